"""bench/run_all's charts: a PNG per bench, each figure beside its baseline and goal (needs matplotlib)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from bench.report_anchors import RATIOS
from bench.report_markdown import bound, fmt, goal_for
from bench.report_results import MISSING, BenchResult, is_number


class Panel(NamedTuple):
    """One bar group of a bench's chart: a figure and what it is measured against."""

    title: str
    bars: tuple[tuple[str, float], ...]


def chart_panels(result: BenchResult) -> list[Panel]:
    """Figures beside their baseline counterpart and their goal, where the JSON gives numbers (not all 0)."""
    figures, baseline, goals = result.section("figures"), result.section("baseline"), result.section("goal")
    panels: list[Panel] = []
    done: set[str] = set()

    def goal_bar(key: str) -> list[tuple[str, float]]:
        goal = goal_for(key, goals)
        if goal is None or not is_number(goal[1]):
            return []
        return [(f"goal {bound(*goal)}".strip(), float(goal[1]))]

    for pair in RATIOS.get(result.bench, ()):
        fig, base = figures.get(pair.figure, MISSING), baseline.get(pair.baseline, MISSING)
        if is_number(fig) and is_number(base):
            bars = (("measured", float(fig)), ("baseline", float(base)), *goal_bar(pair.figure))
            panels.append(Panel(pair.figure, bars))
            done.add(pair.figure)
    for key, value in figures.items():
        if key not in done and is_number(value) and goal_bar(key):
            panels.append(Panel(key, (("measured", float(value)), *goal_bar(key))))
    return [p for p in panels if any(value for _, value in p.bars)][:9]  # bars all zero show nothing


def charts_unavailable() -> str | None:
    """Why charts cannot be drawn here, None when matplotlib imports."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        return f"matplotlib is not importable ({exc}); `.venv/bin/pip install -e '.[bench]'` adds it"
    return None


def draw_chart(bench: str, panels: Sequence[Panel], path: Path) -> None:
    """One PNG for a bench: a small bar chart per panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"measured": "tab:blue", "baseline": "tab:gray"}
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        labels = [label for label, _ in panel.bars]
        heights = [value for _, value in panel.bars]
        ax.bar(labels, heights, color=[colours.get(label, "tab:green") for label in labels])
        for x, height in enumerate(heights):
            ax.annotate(fmt(round(height, 3)), (x, height), ha="center", va="bottom", fontsize=8)
        ax.set_title(panel.title, fontsize=9)
        ax.margins(y=0.15)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(bench)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def make_charts(results: Sequence[BenchResult], out: Path) -> tuple[dict[str, str], str | None]:
    """A PNG per bench that has something to chart, or why none was drawn."""
    why = charts_unavailable()
    if why:
        return {}, why
    charts: dict[str, str] = {}
    for result in results:
        panels = chart_panels(result)
        if panels:
            name = f"{result.bench}.png"
            draw_chart(result.bench, panels, out / name)
            charts[result.bench] = name
    return charts, None
