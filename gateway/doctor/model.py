"""What the doctor works on: the facts gathered once, and the verdict of each check."""

from __future__ import annotations

import datetime as dt
import enum
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.config import Config
from gateway.core.probes import ProbeResult
from gateway.sip.srv import SbcList


class Verdict(enum.StrEnum):
    """How one check came out."""

    PASS = "pass"
    WARN = "warn"  # works, but an installer should know
    FAIL = "fail"  # must be fixed: the doctor exits non-zero
    SKIP = "skip"  # does not apply here, or cannot be known now
    LOOK = "look"  # only a person can tell (the LEDs, the relay): the doctor says what to expect


@dataclass(frozen=True)
class Check:
    """One check's outcome: a name, a verdict, what was found, and the one-line fix."""

    name: str
    verdict: Verdict
    detail: str
    fix: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"name": self.name, "verdict": self.verdict.value, "detail": self.detail, "fix": self.fix}


@dataclass(frozen=True)
class Disk:
    """Space on the file system that holds the data directory."""

    path: Path
    total: int
    free: int


@dataclass(frozen=True)
class Wear:
    """An eMMC's own wear report (JEDEC life time estimates A/B and pre-EOL, as the kernel shows them)."""

    device: str
    life: tuple[int, ...]  # 1 = 0–10 % of the rated life used … 10 = 90–100 %, 11 = beyond it
    pre_eol: int | None  # 1 normal, 2 warning (80 % of the reserve used), 3 urgent


@dataclass(frozen=True)
class Certificate:
    """The TLS certificate Kamailio serves to phones, as read from its file."""

    path: Path
    own: bool  # Lifeline's self-made one (no tls_certificate configured)
    not_before: dt.datetime | None = None
    not_after: dt.datetime | None = None
    error: str | None = None  # missing or unreadable


@dataclass(frozen=True)
class Facts:
    """Everything the checks look at, gathered once (the checks themselves never do I/O)."""

    config: Config | None  # None: the config file is invalid
    config_path: Path | None
    config_error: str | None = None
    status: dict[str, Any] | None = None  # the daemon's GET /api/v1/status; None: no answer
    daemon_error: str | None = None  # why there is no status
    daemon_absent: bool = False  # nobody listens on the API socket (rather than a daemon failing the call)
    sip_target: str | None = None  # where the OPTIONS went (loopback), None: the port is not known
    sip_answer: ProbeResult | None = None
    peer_answer: ProbeResult | None = None  # [ha]: the peer box's Kamailio, asked the same way
    dns: ProbeResult | None = None  # the doctor's own look-up of the cloud's names, only with the daemon down
    srv: SbcList | str | None = None  # the doctor's own SRV lookup of cloud.sbc (a string: why it failed)
    modem_ports: dict[str, str | None] = field(default_factory=dict)  # daemon down: modem → its ports, or None
    disk: Disk | None = None
    disk_error: str | None = None
    clock_synced: bool | None = None  # the kernel's NTP flag (the daemon's view wins when it answers)
    wear: Wear | None = None
    certificate: Certificate | None = None
    drill_last: dict[str, Any] | None = None  # daemon down: the newest drill report's summary
    drill_timer: bool | None = None  # the monthly drill timer is enabled (None: unknown)
    now: float = field(default_factory=time.time)

    @property
    def running(self) -> bool:
        """Whether the daemon answered."""
        return self.status is not None


def ago(seconds: float) -> str:
    """A duration as people say it: 5 s, 3 min, 2 h, 4 d."""
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"
