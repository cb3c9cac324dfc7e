"""Toll-fraud guard rails of the trunk agent: each extension's recent trunk calls, and the limit trips to announce."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from gateway.logs import mask_number
from gateway.trunk.dialplan import Decision, Usage

WINDOW_S = 60.0


class TrunkGuard:
    """Counts trunk calls per extension over the last minute and keeps the trips the daemon turns into alerts."""

    def __init__(
        self,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        quiet_s: float = 600.0,
        keep: int = 100,
    ) -> None:
        self._monotonic = monotonic
        self._wall = wall
        self.quiet_s = quiet_s  # one alert per rule and extension in this time: a fraud run trips thousands
        self.keep = keep
        self._starts: dict[str, deque[float]] = {}
        self._alerted: dict[tuple[str, str], float] = {}
        self.events: list[dict[str, Any]] = []

    def usage(self, extension: str, minutes_today: float, concurrent: int) -> Usage:
        """What the dial plan's limits are checked against for a new call of extension."""
        return Usage(minutes_today=minutes_today, calls_last_minute=self._recent(extension), concurrent=concurrent)

    def started(self, extension: str) -> None:
        """A non-emergency trunk call of extension was placed."""
        self._recent(extension)
        self._starts.setdefault(extension, deque()).append(self._monotonic())

    def tripped(self, extension: str, decision: Decision) -> dict[str, Any] | None:
        """Note a call a limit refused; returns the event when administrators should hear of it (else None)."""
        # The daily cap is the whole trunk's: one alert for it, whoever dials next.
        key = (decision.rule, "" if decision.rule == "daily-minutes" else extension)
        now = self._monotonic()
        last = self._alerted.get(key)
        if last is not None and now - last < self.quiet_s:
            return None
        self._alerted[key] = now
        event = {
            "rule": decision.rule,
            "extension": extension,
            "number": mask_number(decision.number),
            "answer": f"{decision.status} {decision.reason}",
            "at": self._wall(),
        }
        self.events.append(event)
        del self.events[: -self.keep]
        return event

    def since(self, at: float) -> list[dict[str, Any]]:
        """The trips after wall-clock time at (each also goes to the daemon on the agent's event stream)."""
        return [e for e in self.events if e["at"] > at]

    def _recent(self, extension: str) -> int:
        starts = self._starts.get(extension)
        if starts is None:
            return 0
        cutoff = self._monotonic() - WINDOW_S
        while starts and starts[0] <= cutoff:
            starts.popleft()
        return len(starts)
