"""The cloud SIP probe's last hour, kept in memory for the status page's chart.

Every few seconds the newest result of the SIP probe (gateway.core.health) is taken as one sample: its
round trip, whether it was answered, and the loss over the probe's window. Nothing is stored on disk:
after a restart the chart starts empty.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SPAN_S = 3600.0
INTERVAL_S = 5.0


@dataclass(frozen=True)
class Sample:
    """One look at the SIP probe."""

    at: float  # wall clock (the probe result's time)
    ok: bool
    rtt_ms: float | None
    loss: float | None  # 0..1 over the probe's window


def sip_probe(health: dict[str, Any]) -> dict[str, Any] | None:
    """The cloud SIP probe's entry in the health status, None when there is none (no cloud configured)."""
    for probe in (health.get("probes") or {}).values():
        if isinstance(probe, dict) and probe.get("kind") == "sip":
            return probe
    return None


class ProbeHistory:
    """A ring buffer of SIP probe samples covering `span_s`."""

    def __init__(self, span_s: float = SPAN_S, interval_s: float = INTERVAL_S) -> None:
        self.span_s, self.interval_s = span_s, interval_s
        self._samples: deque[Sample] = deque(maxlen=int(span_s / interval_s) + 2)

    def add(self, probe: dict[str, Any] | None) -> bool:
        """Take the probe's newest result as a sample, unless it is the one taken last (or there is none)."""
        if probe is None or probe.get("at") is None or probe.get("ok") is None:
            return False
        at = float(probe["at"])
        if self._samples and self._samples[-1].at >= at:
            return False
        rtt, loss = probe.get("rtt_ms"), probe.get("loss")
        ok = bool(probe["ok"])
        sample = Sample(at, ok, float(rtt) if ok and rtt is not None else None, None if loss is None else float(loss))
        self._samples.append(sample)
        return True

    def samples(self, now: float | None = None) -> list[Sample]:
        """The samples of the last span, oldest first."""
        since = (time.time() if now is None else now) - self.span_s
        return [s for s in self._samples if s.at >= since]

    async def run(self, health: Callable[[], dict[str, Any]]) -> None:
        """Sample `health()` (HealthMonitor.status) every interval until cancelled."""
        while True:
            self.add(sip_probe(health()))
            await asyncio.sleep(self.interval_s)
