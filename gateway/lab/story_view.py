"""`lifeline lab`'s live timeline on the terminal (rich): a table that grows step by step, or plain lines.

At a terminal the table redraws in place; anywhere else (CI, a pipe, `--json`) each step is one line
as it starts and ends, which is also what a program watching the lab reads.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from gateway.lab.story_model import Story

FIGURE_NAMES = {
    "cut_to_first_call_answered_s": "cut → first call answered",
    "cut_to_survival_s": "cut → SURVIVAL",
    "restore_to_normal_s": "WAN back → NORMAL",
    "restore_to_records_delivered_s": "WAN back → every record at the cloud",
    "survival_calls": "calls made in survival",
    "records_delivered": "records delivered",
    "calls_dropped_at_failback": "calls dropped at failback",
    "attacker_banned": "attacker banned",
    "trunk_audio_both_ways": "trunk audio both ways (LAN phone ↔ modem)",
    "attack_to_ban_s": "first guess → ban",
    "records_per_s_restore_to_last_delivered": "records/s, WAN back → last record (few records: backoff-bound)",
    "audio_round_trip_ms_phone_to_echoing_phone": "audio round trip, phone → echoing phone → phone (ms, median)",
    "audio_round_trip_samples": "audio round trips measured",
}


class View:
    """Shows the story as it goes."""

    def __init__(self, to_stderr: bool) -> None:
        self.console = Console(stderr=to_stderr, highlight=False)
        self.live: Live | None = None
        self._printed = 0  # events already shown as lines

    def __enter__(self) -> View:
        if self.console.is_terminal:
            self.live = Live(Table(), console=self.console, refresh_per_second=8, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        if self.live is not None:
            self.live.__exit__(kind, err, tb)
            self.live = None

    def note(self, text: str) -> None:
        """A line beside the timeline (where things are, teardown trouble)."""
        self.console.print(text, markup=False, soft_wrap=True)

    def update(self, story: Story) -> None:
        """Redraw the table, or print the new events as lines."""
        if self.live is not None:
            self.live.update(self.table(story))
            return
        for at, kind, text in story.events[self._printed :]:
            mark = {"step": "▶", "ok": "✓", "fail": "✗"}.get(kind, "·")
            self.console.print(f"[{at:6.1f} s] {mark} {text}", markup=False, soft_wrap=True)
        self._printed = len(story.events)

    def table(self, story: Story) -> Table:
        """The steps so far, with their times and what was seen."""
        table = Table(title="lifeline lab" + (" --quick" if story.quick else ""), expand=True)
        for column, style in (("", ""), ("at", "dim"), ("step", "bold"), ("took", "dim"), ("what was seen", "")):
            table.add_column(column, style=style, no_wrap=column != "what was seen")
        for step in story.steps:
            mark = "[yellow]…[/]" if step.ok is None else ("[green]✓[/]" if step.ok else "[red]✗[/]")
            took = f"{step.end_s - step.start_s:.1f} s" if step.ok is not None else ""
            table.add_row(mark, f"{step.start_s:.1f} s", step.name, took, step.detail)
        return table

    def summary(self, story: Story, report: Path) -> None:
        """The measured figures, and where the report is."""
        table = Table(title="figures")
        table.add_column("measured")
        table.add_column("value", justify="right")
        for key, value in story.figures.items():
            table.add_row(FIGURE_NAMES.get(key, key), _shown(key, value))
        self.console.print(table)
        self.console.print(f"report: {report.resolve()}", markup=False)


def _shown(key: str, value: Any) -> str:
    if key.endswith("_s") and isinstance(value, int | float):
        return f"{value:.2f} s"
    return str(value)
