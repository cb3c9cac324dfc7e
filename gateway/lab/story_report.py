"""`lifeline lab`'s HTML report: steps, figures and an inline SVG timeline (Jinja2 template beside this file)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from gateway.htmlpage import report_templates
from gateway.lab.story_model import Story

TEMPLATE = "story_report.html.tmpl"
WIDTH, ROW, LEFT = 900, 22, 300  # the chart's width, a step's row height, the label column (px)

_env = report_templates(Path(__file__).parent)


def chart(story: Story) -> dict[str, Any]:
    """Where each step's bar and each tick goes on the timeline (pixels)."""
    span = max([s.end_s for s in story.steps] + [1.0])
    scale = (WIDTH - LEFT - 20) / span
    bars = [
        {"y": i * ROW, "x": LEFT + s.start_s * scale, "w": max((s.end_s - s.start_s) * scale, 2), "step": s}
        for i, s in enumerate(story.steps)
    ]
    every = max(1, int(span / 10))
    ticks = [{"x": LEFT + t * scale, "label": f"{t} s"} for t in range(0, int(span) + 1, every)]
    return {"bars": bars, "ticks": ticks, "width": WIDTH, "height": len(bars) * ROW + 30}


def render(story: Story, interrupted: bool) -> str:
    """The report as HTML."""
    made = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    passed = bool(story.steps) and all(s.ok for s in story.steps) and not interrupted
    verdict = "interrupted" if interrupted else ("PASS" if passed else "FAIL")
    return _env.get_template(TEMPLATE).render(story=story, chart=chart(story), made=made, verdict=verdict)


def write(path: Path, story: Story, interrupted: bool) -> None:
    """Write the report (no secret is in it: the lab's passwords are never shown)."""
    path.write_text(render(story, interrupted), encoding="utf-8")
