"""The README's benchmark table: written by `bench/run_all --readme`, between two markers, never by hand."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bench.report_markdown import cell, fmt, goal_for, met_text, ratios
from bench.report_results import BenchResult, combine

START = "<!-- bench-table:start (bench/run_all --readme writes this part) -->"
END = "<!-- bench-table:end -->"
SHOWN = 3  # the figures with a goal shown per bench; REPORT.md has every figure


class ReadmeError(Exception):
    """The README has no place for the table."""


def headline(result: BenchResult) -> str:
    """A bench's figures that have a goal, each with its goal, then its first ratio to its baseline."""
    goals = result.section("goal")
    parts: list[str] = []
    for key, per_round in result.values.get("figures", {}).items():
        goal = goal_for(key, goals)
        if goal is not None and len(parts) < SHOWN:
            parts.append(f"`{key}` {fmt(combine(per_round))} (goal `{goal[0]}` {fmt(goal[1])})")
    rows = ratios(result)
    if rows:
        what, value, _how = rows[0]
        parts.append(f"{what}: {fmt(round(value, 3))}")
    return "; ".join(parts) or "no figures"


def table(results: Sequence[BenchResult], source: str) -> str:
    """The block between the markers: where the figures come from, then one row per bench."""
    lines = [START, "", source, "", "| bench | met | headline figures |", "|---|---|---|"]
    lines += [f"| [{r.bench}](bench/{r.bench}) | {cell(met_text(r))} | {cell(headline(r))} |" for r in results]
    return "\n".join([*lines, "", "Every figure, baseline and goal: `bench/out/REPORT.md` after `bench/run_all`.", END])


def write(readme: Path, results: Sequence[BenchResult], source: str) -> None:
    """Replace the table between the markers (ReadmeError naming the file if they are missing)."""
    text = readme.read_text(encoding="utf-8")
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ReadmeError(f"{readme}: no '{START}' … '{END}' markers to put the table between")
    readme.write_text(text[:start] + table(results, source) + text[end + len(END) :], encoding="utf-8")
