"""The appliance's front panel and bypass relay, driven by the mode controller and the health loop."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import structlog

from gateway.core.mode import Mode, ModeController, Override
from gateway.hw.button import ButtonWatcher, Gesture, classify
from gateway.hw.panel import Panel
from gateway.hw.patterns import FAST_BLINK, FaultClass, PanelState, TrunkView, display
from gateway.hw.pinmap import LedRole, PinMap
from gateway.hw.relay import BypassRelay, RelayState

log = structlog.get_logger("hw")

LAMP_TEST_S = 1.5
DRILL_REASON = "drill: front-panel button held"


@dataclass(frozen=True)
class Health:
    """One verdict of the daemon's health loop."""

    healthy: bool  # the parts that serve calls are up
    faults: frozenset[FaultClass] = frozenset()
    trunk: TrunkView | None = None
    owns_analog_trunk: bool = False  # the trunk agent has the analog modem and wants the line


@dataclass(frozen=True)
class HardwareTimings:
    """How long the button must be held, how long a drill lasts, when a health verdict goes stale."""

    drill_hold_s: float = 3.0
    reset_hold_s: float = 10.0
    drill_duration_s: float = 600.0
    health_stale_s: float = 5.0


class HoldFeedback(enum.StrEnum):
    """What the LEDs say while the button is still held: what letting go now will do."""

    NONE = "none"
    DRILL = "drill"
    RESET = "reset"


class HardwareController:
    """LEDs per mode and fault, the button's gestures, and the relay that only a live daemon holds."""

    def __init__(
        self,
        pinmap: PinMap,
        factory: Any,
        mode: ModeController,
        reset_admin_password: Callable[[], Awaitable[None]],
        timings: HardwareTimings = HardwareTimings(),
    ) -> None:
        self._pinmap = pinmap
        self._factory = factory
        self._mode = mode
        self._reset_admin_password = reset_admin_password
        self.timings = timings
        self._state = PanelState(mode=mode.mode)
        self._health: Health | None = None
        self._health_at = 0.0
        self._feedback = HoldFeedback.NONE
        self._panel: Panel | None = None
        self._relay: BypassRelay | None = None
        self._button: ButtonWatcher | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._kicker: asyncio.Task[None] | None = None
        self._drill_end: asyncio.TimerHandle | None = None
        self._hold_timers: list[asyncio.TimerHandle] = []
        self._lamp_test_end: asyncio.TimerHandle | None = None

    # --- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Claim the pins (relay in bypass, LEDs showing the mode) and start the relay's kick task."""
        loop = asyncio.get_running_loop()
        self._relay = BypassRelay(self._pinmap.relay, self._factory)
        self._panel = Panel(self._pinmap.leds, self._factory)
        self._button = ButtonWatcher(self._pinmap.button, self._factory, loop, self._pressed, self._released)
        self._state = replace(self._state, mode=self._mode.mode)
        self._render()
        self._kicker = asyncio.create_task(self._kick_loop(), name="relay-kick")
        log.info("hardware started", relay=self._relay.state.value, mode=self._state.mode.value)

    async def stop(self) -> None:
        """Drop the relay to bypass, switch the LEDs off and free the pins."""
        if self._kicker is not None:
            self._kicker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._kicker
        for handle in [self._drill_end, self._lamp_test_end, *self._hold_timers]:
            if handle is not None:
                handle.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._relay is not None:
            self._relay.close()
        if self._button is not None:
            self._button.close()
        if self._panel is not None:
            self._panel.close()
        log.info("hardware stopped", relay="bypass")

    # --- inputs -----------------------------------------------------------------------------

    async def on_mode(self, old: Mode, new: Mode, reason: str) -> None:
        """ModeController listener: the mode LEDs follow the mode."""
        drill = self._state.drill and self._mode.status().override is Override.SURVIVAL
        self._state = replace(self._state, mode=new, drill=drill)
        self._render()

    def update(self, health: Health) -> None:
        """A verdict from the health loop: faults and trunk on the LEDs, and the heartbeat blinks once."""
        self._health, self._health_at = health, time.monotonic()
        self._state = replace(self._state, faults=health.faults, trunk=health.trunk)
        if self._panel is not None:
            self._panel.toggle(LedRole.POWER)
        self._render()

    @property
    def relay_state(self) -> RelayState:
        """Whether Lifeline holds the analog line."""
        return self._relay.state if self._relay is not None else RelayState.BYPASS

    def status(self) -> dict[str, Any]:
        """What `lifeline status` shows about the front panel and the relay."""
        relay = self._relay
        return {
            "relay": self.relay_state.value,
            "relay_reason": relay.reason if relay is not None else "not started",
            "drill": self._state.drill,
            "faults": [fault.name.lower() for fault in sorted(self._state.faults)],
        }

    @property
    def drill_active(self) -> bool:
        """Whether a button drill is running."""
        return self._state.drill

    # --- the relay --------------------------------------------------------------------------

    def _relay_verdict(self) -> tuple[bool, str]:
        health = self._health
        if health is None:
            return False, "no health verdict yet"
        if time.monotonic() - self._health_at > self.timings.health_stale_s:
            return False, "health verdict is stale (health loop stopped)"
        if not health.healthy:
            return False, "unhealthy"
        if not health.owns_analog_trunk:
            return False, "the analog trunk is not in use"
        return True, "healthy and owning the analog trunk"

    async def _kick_loop(self) -> None:
        # Runs on the event loop on purpose: if the loop hangs, the kicks stop and the HAT drops the relay.
        assert self._relay is not None
        interval = self._pinmap.relay.kick_interval_ms / 1000
        while True:
            want, reason = self._relay_verdict()
            if want:
                self._relay.hold(reason)
                self._relay.kick()
            elif self._relay.state is RelayState.HELD:
                self._relay.release(reason)
            await asyncio.sleep(interval)

    # --- the button -------------------------------------------------------------------------

    def _pressed(self) -> None:
        loop = asyncio.get_running_loop()
        t = self.timings
        self._hold_timers = [
            loop.call_later(t.drill_hold_s, self._set_feedback, HoldFeedback.DRILL),
            loop.call_later(t.reset_hold_s, self._set_feedback, HoldFeedback.RESET),
        ]

    def _released(self, held_s: float) -> None:
        for handle in self._hold_timers:
            handle.cancel()
        self._hold_timers = []
        self._feedback = HoldFeedback.NONE
        gesture = classify(held_s, self.timings.drill_hold_s, self.timings.reset_hold_s)
        log.info("button", gesture=gesture.value, held_s=round(held_s, 2))
        if gesture is Gesture.SHORT:
            self._lamp_test()
        elif gesture is Gesture.DRILL:
            self._spawn(self._start_drill())
        else:
            self._spawn(self._reset_admin_password())
        self._render()

    def _set_feedback(self, feedback: HoldFeedback) -> None:
        self._feedback = feedback
        self._render()

    def _lamp_test(self) -> None:
        # Every LED on for a moment (proves them), then back to the live status.
        self._state = replace(self._state, lamp_test=True)
        if self._lamp_test_end is not None:
            self._lamp_test_end.cancel()
        self._lamp_test_end = asyncio.get_running_loop().call_later(LAMP_TEST_S, self._end_lamp_test)
        health = self._health
        log.info(
            "status",
            mode=self._state.mode.value,
            faults=[f.name for f in sorted(self._state.faults)],
            relay=self.relay_state.value,
            healthy=health.healthy if health else None,
        )

    def _end_lamp_test(self) -> None:
        self._state = replace(self._state, lamp_test=False)
        self._render()

    async def _start_drill(self) -> None:
        if self._drill_end is not None:
            self._drill_end.cancel()
        self._state = replace(self._state, drill=True)
        await self._mode.set_override(Override.SURVIVAL, DRILL_REASON)
        self._render()
        self._drill_end = asyncio.get_running_loop().call_later(
            self.timings.drill_duration_s, lambda: self._spawn(self._end_drill())
        )

    async def _end_drill(self) -> None:
        self._drill_end = None
        was_drill = self._state.drill
        self._state = replace(self._state, drill=False)
        # Someone may have set the mode by hand meanwhile: only undo our own override.
        if was_drill and self._mode.status().override is Override.SURVIVAL:
            await self._mode.set_override(Override.AUTO, "drill over")
        self._render()

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await coro
            except Exception:
                log.exception("button action failed")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- output -----------------------------------------------------------------------------

    def _render(self) -> None:
        if self._panel is None:
            return
        patterns = display(self._state)
        if self._feedback is HoldFeedback.DRILL:
            patterns[LedRole.SURVIVAL] = FAST_BLINK
        elif self._feedback is HoldFeedback.RESET:
            patterns[LedRole.FAULT] = FAST_BLINK
        self._panel.show(patterns)
