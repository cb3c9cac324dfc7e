"""The mode controller: the one explicit state machine that decides who serves the phones."""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from gateway.listeners import AsyncListeners
from gateway.store import Store

if TYPE_CHECKING:
    from gateway.config import Config

log = structlog.get_logger("mode")


class Mode(enum.StrEnum):
    """Who serves the phones: the cloud (NORMAL) or Lifeline (SURVIVAL)."""

    NORMAL = "normal"
    SUSPECT = "suspect"
    SURVIVAL = "survival"
    RECOVERING = "recovering"

    @property
    def serves_locally(self) -> bool:
        """Whether Kamailio answers phones itself in this mode."""
        # SUSPECT still relays (per-request fallback covers it); RECOVERING keeps serving
        # locally until the hold-down has proven the cloud stable.
        return self in (Mode.SURVIVAL, Mode.RECOVERING)


class Override(enum.StrEnum):
    """A manual override set with `lifeline mode`."""

    AUTO = "auto"
    NORMAL = "normal"
    SURVIVAL = "survival"


@dataclass(frozen=True)
class ModeStatus:
    """What `lifeline status` shows about the mode."""

    mode: Mode
    override: Override
    since: float
    reason: str
    detected: Mode
    override_at: float = 0.0  # when the override was set (wall clock): in a pair the newer one wins
    following: Mode | None = None  # a pair's standby: the mode the active box decided

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "mode": self.mode.value,
            "override": self.override.value,
            "override_at": self.override_at,
            "since": self.since,
            "reason": self.reason,
            "detected": self.detected.value,
            "following": self.following.value if self.following is not None else None,
        }


@dataclass(frozen=True)
class Decision:
    """A mode change the evidence calls for."""

    mode: Mode
    reason: str


class Policy(Protocol):
    """What turns probe outcomes into mode changes (gateway.core.failover.FailoverPolicy)."""

    def resume(self, mode: Mode, now: float) -> None:
        """Start from a mode restored at boot."""

    def observe(self, ok: bool, mode: Mode, now: float) -> Decision | None:
        """One probe outcome; a Decision when the mode should move."""


class ModeController:
    """Holds the mode, persists it, logs and records every change, and tells the listeners.

    Automatic detection drives it: each cloud SIP probe outcome goes through the injected failover
    policy (`observe_probe`), or a conclusion arrives directly (`observe`). A manual override wins
    over detection until it is set back to auto; detection keeps tracking meanwhile. A pair's standby
    follows the mode its active box decided (`follow`) instead of its own detection.
    """

    def __init__(self, store: Store, policy: Policy | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._policy = policy
        self._clock = clock
        saved = store.get_state("mode", {})
        # A restart in the middle of an outage comes back in the mode it left.
        self._mode = Mode(saved.get("mode", Mode.NORMAL.value))
        self._override = Override(saved.get("override", Override.AUTO.value))
        self._since = float(saved.get("since", time.time()))
        self._reason = str(saved.get("reason", "first start"))
        self._auto_mode = Mode(saved.get("auto_mode", Mode.NORMAL.value))
        self._override_at = float(saved.get("override_at", 0.0))
        self._leader: Mode | None = None  # the pair's active box's mode while this box follows it
        self.on_change: AsyncListeners[[Mode, Mode, str]] = AsyncListeners("mode change")  # (old, new, reason)
        self._saving = asyncio.Lock()  # records land in the order of the changes they record
        if not saved:
            # Recorded now, not at the first change: else every restart would be "first start" again.
            self._persist()
        if policy is not None:
            policy.resume(self._auto_mode, clock())

    @property
    def mode(self) -> Mode:
        """The current mode."""
        return self._mode

    def status(self) -> ModeStatus:
        """The mode, the override, since when and why."""
        return ModeStatus(
            self._mode, self._override, self._since, self._reason, self._auto_mode, self._override_at, self._leader
        )

    async def set_override(self, override: Override, reason: str, at: float | None = None) -> None:
        """Apply a manual override (or go back to automatic detection); at: when it was set (the peer's)."""
        self._override_at = time.time() if at is None else at
        if override != self._override:
            log.info("override", old=self._override.value, new=override.value, reason=reason)
            # Recorded when it arrived here: an override the peer set hours ago (at) is news on this box now.
            event: tuple[str, str, dict[str, Any], float | None] = (
                "override",
                f"override {self._override} → {override}: {reason}",
                {},
                None,
            )
            self._override = override
            await self._save(event)
        await self._set_state(self._target(), reason)
        await self._save()

    async def follow(self, leader: Mode | None, reason: str) -> None:
        """Follow the mode the pair's active box decided; None: decide from this box's probes again."""
        if leader == self._leader:
            return
        if leader is None and self._leader is not None and self._auto_mode != self._leader:
            # Taking over: start from the mode the branch was in; this box's own probes move it from there.
            self._auto_mode = self._leader
            if self._policy is not None:
                self._policy.resume(self._leader, self._clock())
        log.info("pair mode", following=leader.value if leader is not None else None, reason=reason)
        self._leader = leader
        if self._override is Override.AUTO:
            await self._set_state(self._target(), reason)
        await self._save()

    def _target(self) -> Mode:
        """The override, else the active box's mode (a pair's standby), else what detection concluded."""
        if self._override is not Override.AUTO:
            return Mode(self._override.value)
        return self._leader if self._leader is not None else self._auto_mode

    async def observe_probe(self, ok: bool, evidence: dict[str, Any] | None = None) -> None:
        """One cloud SIP probe outcome; the failover policy decides whether the mode moves."""
        if self._policy is None:
            return
        # The wall clock read with the policy's: the change is recorded at the moment it was decided, so
        # two recorded changes are as far apart as the policy measured (a hold-down shows in full).
        now, at = self._clock(), time.time()
        decision = self._policy.observe(ok, self._auto_mode, now)
        if decision is not None:
            await self.observe(decision.mode, decision.reason, evidence, at)

    async def observe(
        self, mode: Mode, reason: str, evidence: dict[str, Any] | None = None, at: float | None = None
    ) -> None:
        """What automatic detection concludes (at: when, wall clock); applied unless a manual override is in force."""
        if mode == self._auto_mode:
            return
        if self._override is not Override.AUTO:
            log.info("detected (override in force)", old=self._auto_mode.value, new=mode.value, reason=reason)
        self._auto_mode = mode
        if self._override is Override.AUTO and self._leader is None:
            await self._set_state(mode, reason, evidence, at)
        await self._save()

    async def _set_state(
        self, new: Mode, reason: str, evidence: dict[str, Any] | None = None, at: float | None = None
    ) -> None:
        old = self._mode
        if new == old:
            return
        self._mode, self._since, self._reason = new, time.time() if at is None else at, reason
        log.warning("mode changed", old=old.value, new=new.value, reason=reason, evidence=evidence)
        data = {"old": old.value, "new": new.value, "reason": reason, "evidence": evidence or {}}
        # The listeners first (Kamailio serves the phones locally at once); the record of the change is
        # written after, off the loop: a synced write on an SD card can take tens of milliseconds, and a
        # crash between the two only repeats the change after the restart, which detection redoes.
        await self.on_change.emit(old, new, reason)
        await self._save(("mode", f"{old} → {new}: {reason}", data, self._since))

    def _snapshot(self) -> dict[str, Any]:
        return {
            "mode": self._mode.value,
            "override": self._override.value,
            "since": self._since,
            "reason": self._reason,
            "auto_mode": self._auto_mode.value,
            "override_at": self._override_at,
        }

    def _persist(self) -> None:
        self._store.set_state("mode", self._snapshot())

    async def _save(self, event: tuple[str, str, dict[str, Any], float | None] | None = None) -> None:
        # Taken now, written in a worker thread: a later change cannot overtake this one (the lock).
        state = self._snapshot()

        def write() -> None:
            if event is not None:
                self._store.add_event(*event)
            self._store.set_state("mode", state)

        async with self._saving:
            await asyncio.to_thread(write)


async def set_override_offline(config: Config, override: Override, reason: str) -> dict[str, Any]:
    """Set the mode override in the store when no daemon runs; it applies at the next start."""
    store = Store(config.db_path)
    try:
        controller = ModeController(store)
        await controller.set_override(override, reason)
        return controller.status().as_dict()
    finally:
        store.close()
