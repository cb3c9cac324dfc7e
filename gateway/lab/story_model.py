"""What `lifeline lab` tells: its steps as they went, the timeline and the measured figures."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class StepFailedError(Exception):
    """A step saw something other than what it waited for (its message says what)."""


@dataclass
class Step:
    """One step of the story as it went."""

    name: str
    ok: bool | None = None  # None: running
    detail: str = ""
    start_s: float = 0.0
    end_s: float = 0.0


@dataclass
class Story:
    """The steps in order, what happened when (seconds since the start), and the measured figures."""

    quick: bool
    started: float = field(default_factory=time.monotonic)
    steps: list[Step] = field(default_factory=list)
    events: list[tuple[float, str, str]] = field(default_factory=list)  # (s, kind, text)
    figures: dict[str, Any] = field(default_factory=dict)
    on_change: Callable[[Story], None] = lambda story: None

    def now(self) -> float:
        """Seconds since the story began."""
        return round(time.monotonic() - self.started, 3)

    def event(self, kind: str, text: str) -> None:
        """Put something on the timeline."""
        self.events.append((self.now(), kind, text))
        self.on_change(self)

    def as_dict(self) -> dict[str, Any]:
        """The summary `--json` prints."""
        steps = [{"name": s.name, "ok": bool(s.ok), "detail": s.detail} for s in self.steps]
        return {"steps": steps, "figures": self.figures}
