"""The power-fail-transfer relay: de-energised (the default) = the office's analog line is on the PSTN."""

from __future__ import annotations

import enum
from typing import Any

import structlog
from gpiozero import DigitalOutputDevice

from gateway.hw.pinmap import RelayPins

log = structlog.get_logger("relay")


class RelayState(enum.StrEnum):
    """Who has the analog line."""

    BYPASS = "bypass"  # coil off: phone/line straight to the PSTN (also what a dead Pi gives)
    HELD = "held"  # coil on: the line goes to Lifeline's analog modem


class BypassRelay:
    """Drives the HAT's relay stage: `enable` high and `kick` toggling hold the coil; anything else drops it.

    Only `kick()` calls keep the relay held; they come from a task on the daemon's event loop, so a
    crash, a hung loop, a stop or a watchdog reset all end the toggling and the HAT releases the coil.
    """

    def __init__(self, pins: RelayPins, factory: Any) -> None:
        self._enable = DigitalOutputDevice(pins.enable.pin, initial_value=False, pin_factory=factory)
        try:
            self._kick = DigitalOutputDevice(pins.kick.pin, initial_value=False, pin_factory=factory)
        except Exception:
            self._enable.close()
            raise
        self.state = RelayState.BYPASS
        self.reason = "not started"

    def _set_state(self, new: RelayState, reason: str) -> None:
        old, self.state, self.reason = self.state, new, reason
        if old is not new:
            log.warning("relay", old=old.value, new=new.value, reason=reason)

    def hold(self, reason: str) -> None:
        """Take the analog line (enable high); it stays taken only while `kick()` keeps coming."""
        if self.state is RelayState.HELD:
            return
        self._enable.on()
        self._set_state(RelayState.HELD, reason)

    def kick(self) -> None:
        """Retrigger the HAT's hold timer (one edge)."""
        if self.state is RelayState.HELD:
            self._kick.toggle()

    def release(self, reason: str) -> None:
        """Give the line back to the PSTN at once."""
        self._enable.off()
        self._kick.off()
        self._set_state(RelayState.BYPASS, reason)

    def close(self) -> None:
        """Release the relay and the pins."""
        self.release("stopping")
        self._kick.close()
        self._enable.close()
