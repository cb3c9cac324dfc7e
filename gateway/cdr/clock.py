"""The best clock for call records: NTP-synced system clock → modem network time → monotonic since the last good time.

The Pi has no battery clock and NTP is gone in an outage, so a record's timestamps say which
source they came from, and each record also keeps CLOCK_BOOTTIME readings of its events: when
a better source returns within the same boot, the daemon corrects the record (`BestClock.correct`).
The modem's network time (AT+CCLK / +CTZV) is a `ClockSource` the trunk agent provides; until it
lands, `FakeClockSource` stands in for it in tests.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog

from gateway.cdr.records import ClockKind

log = structlog.get_logger("cdr.clock")

ANCHOR_KEY = "cdr.clock_anchor"
ANCHOR_PERSIST_EVERY_S = 60.0
TIME_ERROR = 5  # adjtimex(2): the clock is not synchronised
STA_UNSYNC = 0x0040


class Host(Protocol):
    """The machine's own clocks."""

    def wall(self) -> float:
        """The system wall clock (may be 1970 after a power cut without NTP)."""

    def mono(self) -> float:
        """Seconds since boot (CLOCK_BOOTTIME), steady across daemon restarts, not across reboots."""

    def boot_id(self) -> str:
        """Identifies this boot; monotonic readings compare only within one boot."""


class ClockSource(Protocol):
    """A source of trusted wall time (NTP-synced system clock, modem network time)."""

    kind: ClockKind

    def now(self) -> float | None:
        """The trusted UTC epoch now, or None while this source has no trusted time."""


class SystemHost:
    """The real clocks of this machine."""

    def __init__(self, boot_id_path: Path = Path("/proc/sys/kernel/random/boot_id")) -> None:
        self._boot_id = boot_id_path.read_text().strip() if boot_id_path.exists() else "unknown"

    def wall(self) -> float:
        """time.time()."""
        return time.time()

    def mono(self) -> float:
        """CLOCK_BOOTTIME."""
        return time.clock_gettime(time.CLOCK_BOOTTIME)

    def boot_id(self) -> str:
        """The kernel's boot id."""
        return self._boot_id


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h> (x86_64 and aarch64 share this layout): modes, 3 longs,
    # status, then longs and padding; we only read `status` and the return value.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("rest", ctypes.c_long * 30),
    ]


def kernel_clock_synced() -> bool:
    """Whether the kernel says the system clock is NTP-synchronised (adjtimex, read-only)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        tx = _Timex()
        state = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError):
        return False
    return bool(state not in (-1, TIME_ERROR) and not tx.status & STA_UNSYNC)


class SystemNtpClock:
    """The system clock, trusted only while the kernel reports it NTP-synchronised."""

    kind = ClockKind.NTP

    def __init__(self, host: Host, synced: Callable[[], bool] = kernel_clock_synced) -> None:
        self._host = host
        self._synced = synced

    def now(self) -> float | None:
        """The wall clock if synced, else None."""
        return self._host.wall() if self._synced() else None


class FakeClockSource:
    """A clock source whose time the test sets (stands in for NTP or the modem's network time)."""

    def __init__(self, kind: ClockKind, now: Callable[[], float | None]) -> None:
        self.kind = kind
        self._now = now

    def now(self) -> float | None:
        """Whatever the test says."""
        return self._now()


@dataclass(frozen=True)
class Anchor:
    """A trusted wall time and the monotonic reading taken with it."""

    wall: float
    mono: float
    boot_id: str
    kind: ClockKind

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"wall": self.wall, "mono": self.mono, "boot_id": self.boot_id, "kind": self.kind.value}


@dataclass(frozen=True)
class Stamp:
    """An event's time: the best estimate, where it came from, and the monotonic reading to correct it by."""

    ts: float
    kind: ClockKind
    mono: float
    boot_id: str


class AnchorStore(Protocol):
    """Where the last good anchor survives a daemon restart (the Store's state table)."""

    def get_state(self, key: str, default: Any = None) -> Any:
        """Read a persisted value."""

    def set_state(self, key: str, value: Any) -> None:
        """Persist a value durably."""


class BestClock:
    """Chooses the best available time and converts the wall-clock times Kamailio writes."""

    def __init__(self, host: Host, sources: Sequence[ClockSource], anchors: AnchorStore | None = None) -> None:
        self.host = host
        self.sources = sorted(sources, key=lambda s: s.kind.rank)
        self._anchors = anchors
        self._anchor: Anchor | None = None
        self._persisted_at = -1e18
        self._dirty = False
        if anchors is not None:
            saved = anchors.get_state(ANCHOR_KEY)
            if saved:
                self._anchor = Anchor(saved["wall"], saved["mono"], saved["boot_id"], ClockKind(saved["kind"]))

    def _refresh(self) -> ClockKind:
        """Read the sources; the kind of the best one answering, or MONOTONIC/UNSYNCED."""
        mono, boot = self.host.mono(), self.host.boot_id()
        for source in self.sources:
            value = source.now()
            if value is None:
                continue
            self._anchor = Anchor(value, mono, boot, source.kind)
            # Written by flush(), outside the caller's transaction (the store's lock is not reentrant).
            self._dirty = self._dirty or mono - self._persisted_at >= ANCHOR_PERSIST_EVERY_S
            return source.kind
        if self._anchor is not None and self._anchor.boot_id == boot:
            return ClockKind.MONOTONIC
        return ClockKind.UNSYNCED

    def flush(self) -> None:
        """Persist the last good anchor if due (call outside any store transaction)."""
        if self._dirty and self._anchors is not None and self._anchor is not None:
            self._anchors.set_state(ANCHOR_KEY, self._anchor.as_dict())
            self._persisted_at = self._anchor.mono
            self._dirty = False

    def now(self) -> Stamp:
        """The best estimate of now."""
        return self.from_wall(self.host.wall())

    def from_wall(self, wall_event: float) -> Stamp:
        """Convert an event time read from the system wall clock (Kamailio's acc rows) to the best estimate."""
        kind = self._refresh()
        mono_now, wall_now, boot = self.host.mono(), self.host.wall(), self.host.boot_id()
        # The wall clock did not step between the event and now (events are read within a
        # second or so), so the event's monotonic time follows from the difference.
        mono_event = mono_now - (wall_now - wall_event)
        if kind is ClockKind.UNSYNCED or self._anchor is None:
            return Stamp(wall_event, ClockKind.UNSYNCED, mono_event, boot)
        return Stamp(self._anchor.wall + (mono_event - self._anchor.mono), kind, mono_event, boot)

    def correct(self, mono: float | None, boot_id: str, kind: ClockKind) -> tuple[float, ClockKind] | None:
        """A better estimate for an event stamped with `kind`, if a better source is known in the same boot."""
        current = self._refresh()
        if mono is None or self._anchor is None or current.rank >= kind.rank or boot_id != self._anchor.boot_id:
            return None
        if current not in (ClockKind.NTP, ClockKind.NETWORK):
            return None
        return self._anchor.wall + (mono - self._anchor.mono), current

    def status(self) -> dict[str, Any]:
        """The source in use and the anchor."""
        kind = self._refresh()
        return {"source": kind.value, "anchor": self._anchor.as_dict() if self._anchor else None}
