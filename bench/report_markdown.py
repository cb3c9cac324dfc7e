"""bench/run_all's REPORT.md: the summary table, then each bench's figures, goals, ratios and competitors."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.report_anchors import ANCHORS, ANCHORS_DOC, RATIOS
from bench.report_results import MISSING, BenchResult, Varies, combine, is_number, summary_json, tail


@dataclass(frozen=True)
class Context:
    """What the report says about the run as a whole."""

    source: str
    rounds: int
    wall_s: float | None
    wall_s_max: float | None
    charts: Mapping[str, str]  # bench → PNG file beside the report
    charts_skipped: str | None  # why there are no charts at all
    notes: tuple[str, ...] = ()


def fmt(value: Any) -> str:
    """A value as the report shows it: thousands separated, at most 3 decimals, JSON's spelling otherwise."""
    if value is MISSING:
        return "—"
    if isinstance(value, Varies):
        return "varies: " + " / ".join(fmt(v) for v in value)
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        if abs(value) < 1:
            return f"{value:.3g}"
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    return str(value)


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def goal_for(figure: str, goals: Mapping[str, Any]) -> tuple[str, Any] | None:
    """The goal a figure answers to by name: KEY, KEY_min or KEY_max (a nested figure by its joined or leaf name)."""
    names = (figure.replace(".", "_"), figure.rsplit(".", 1)[-1])
    stems = {goal: re.sub(r"_(min|max)$", "", goal) for goal in goals}
    for goal, stem in stems.items():
        if stem in names:
            return goal, goals[goal]
    for goal, stem in stems.items():
        if any(name.startswith(stem + "_") for name in names):
            return goal, goals[goal]
    return None


def bound(goal: str, target: Any) -> str:
    """The comparison a goal states: ≥ for KEY_min, ≤ for KEY_max or a time (KEY_ms, KEY_s), = for a zero."""
    if goal.endswith("_min"):
        return "≥"
    if goal.endswith(("_max", "_ms", "_s")):
        return "≤"
    return "=" if is_number(target) and target == 0 else ""


def goal_cell(value: Any, goal: tuple[str, Any] | None) -> str:
    """The goal column: bound, target and ✓/✗ where the goal states its direction."""
    if goal is None:
        return ""
    name, target = goal
    sign = bound(name, target)
    if not sign:
        return f"{fmt(target)} (`{name}`)"
    text = f"{sign} {fmt(target)}"
    if is_number(value) and is_number(target):
        ok = value >= target if sign == "≥" else value <= target if sign == "≤" else value == target
        text += " ✓" if ok else " ✗"
    return text


def ratios(result: BenchResult) -> list[tuple[str, float, str]]:
    """(what, ratio, how) for each figure over its baseline counterpart, and every ratio the bench reports."""
    figures, baseline = result.section("figures"), result.section("baseline")
    many = len(result.runs) > 1
    rows: list[tuple[str, float, str]] = []
    shown: set[str] = set()
    for pair in RATIOS.get(result.bench, ()):
        what = f"{pair.figure} ÷ {pair.baseline}"
        if pair.reported and is_number(figures.get(pair.reported, MISSING)):
            how = f"reported by the bench as `{pair.reported}`" + (" (median over rounds)" if many else "")
            rows.append((what, figures[pair.reported], how))
            shown.add(pair.reported)
        elif is_number(figures.get(pair.figure, MISSING)) and is_number(baseline.get(pair.baseline, MISSING)):
            if baseline[pair.baseline] == 0:
                continue
            how = "computed here from the " + ("medians" if many else "figures") + " above"
            rows.append((what, figures[pair.figure] / baseline[pair.baseline], how))
    for key, value in figures.items():
        if "ratio" in key.rsplit(".", 1)[-1].split("_") and key not in shown and is_number(value):
            rows.append((f"`{key}`", value, "reported by the bench"))
    return rows


def codes_text(result: BenchResult) -> str:
    """Every round's exit code: 'timeout' for a run stopped, '?' where not known."""
    return ", ".join(
        "timeout" if r.timed_out else "?" if r.exit_code is None else str(r.exit_code) for r in result.runs
    )


def walls_text(result: BenchResult) -> str:
    """Every round's wall time."""
    walls = [r.wall_s for r in result.runs]
    if all(w is None for w in walls):
        return "—"
    return ", ".join("—" if w is None else f"{w:.1f}" for w in walls) + " s"


def met_text(result: BenchResult) -> str:
    """The summary table's met cell: yes, or **no** with the rounds that failed and why."""
    n = len(result.runs)
    counted = f" ({result.met_rounds} of {n} rounds)" if n > 1 else ""
    if result.met:
        return "yes" + counted
    failed = [
        (f"round {r.round}: " if n > 1 else "") + (p or "its JSON says not met")
        for r, s, p in zip(result.runs, result.summaries, result.problems, strict=True)
        if p or not (s and s["met"])
    ]
    return "**no**" + counted + ": " + "; ".join(failed)


def value_table(result: BenchResult, section: str, with_goals: bool) -> list[str]:
    """A section's values as a Markdown table (per-round values when there are several rounds)."""
    values = result.values.get(section, {})
    if not values:
        return []
    goals = result.section("goal")
    many = len(result.runs) > 1
    head = [section.rstrip("s") if section == "figures" else section, "median" if many else "value"]
    head += ["per round"] if many else []
    head += ["goal"] if with_goals else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, per_round in values.items():
        value = combine(per_round)
        row = [f"`{key}`", fmt(value)]
        row += [" / ".join(fmt(v) for v in per_round)] if many else []
        row += [goal_cell(value, goal_for(key, goals))] if with_goals else []
        lines.append("| " + " | ".join(cell(c) for c in row) + " |")
    return lines


def bench_section(result: BenchResult, ctx: Context) -> list[str]:
    """One bench's part of the report."""
    out = [f"## {result.bench}", ""]
    verdict = met_text(result)
    out += [f"Met: {verdict}. Exit codes: {codes_text(result)}. Wall time: {walls_text(result)}.", ""]
    for run, why in zip(result.runs, result.problems, strict=True):
        if why:
            out += [f"Round {run.round} failed: {why}. The last lines of its output (stdout, then stderr):", ""]
            out += ["```", tail(run) or "(no output at all)", "```", ""]
    if not any(result.summaries):
        out += ["No figures: no round printed a JSON summary.", ""]
    else:
        out += [*value_table(result, "figures", with_goals=True), ""]
        baseline = value_table(result, "baseline", with_goals=False)
        out += [*baseline, ""] if baseline else ["No baseline in the JSON.", ""]
        goals = result.section("goal")
        stated = ", ".join(f"`{k}` {fmt(v)}" for k, v in goals.items()) or "none"
        out += [f"Goals as the bench states them: {stated}. ✓/✗ compare a figure with the goal of its name.", ""]
        rows = ratios(result)
        if rows:
            out += ["| ratio | value | how |", "|---|---|---|"]
            out += [f"| {cell(what)} | {fmt(round(value, 3))} | {cell(how)} |" for what, value, how in rows]
            out.append("")
    anchors = ANCHORS.get(result.bench, ())
    if anchors:
        quoted = "; ".join(f"{a.product}: {a.figure} ({a.source})" for a in anchors)
        out += [f"Compared with (published, quoted from `{ANCHORS_DOC}`): {quoted}.", ""]
    else:
        out += [f"Compared with: nothing published for this bench in `{ANCHORS_DOC}`.", ""]
    if result.bench in ctx.charts:
        out += [f"![{result.bench}: each figure beside its baseline and goal]({ctx.charts[result.bench]})", ""]
    return out


def render_report(results: Sequence[BenchResult], ctx: Context) -> str:
    """REPORT.md: the summary table, then each bench's figures, baseline, goals, ratios and competitors."""
    out = ["# Benchmark report", "", ctx.source, ""]
    out += ["| bench | met | exit codes | wall time |", "|---|---|---|---|"]
    for r in results:
        out.append(f"| {r.bench} | {cell(met_text(r))} | {codes_text(r)} | {walls_text(r)} |")
    summary = summary_json(results, ctx.wall_s, ctx.wall_s_max)["figures"]
    runs = sum(len(r.runs) for r in results)
    wall = "not known" if ctx.wall_s is None else f"{ctx.wall_s:.1f} s"
    if ctx.wall_s_max is not None:
        wall += f" (goal ≤ {ctx.wall_s_max:.0f} s)"
    out += [
        "",
        f"{summary['benches']} benches, {summary['met']} met every goal in every round; {summary['failed_runs']} of "
        f"{runs} runs failed (exit code not 0, timeout, or no JSON summary). Wall time {wall}.",
        "",
    ]
    if ctx.rounds > 1:
        out += [f"Figures are medians over {ctx.rounds} rounds; every round's value stands beside them.", ""]
    out += [*(f"{note}" for note in ctx.notes), *([""] if ctx.notes else [])]
    if ctx.charts_skipped:
        out += [f"Charts skipped: {ctx.charts_skipped}.", ""]
    for r in results:
        out += bench_section(r, ctx)
    return "\n".join(out).rstrip("\n") + "\n"
