"""The status LEDs, played by gpiozero from the patterns in gateway.hw.patterns."""

from __future__ import annotations

import itertools
from typing import Any

from gpiozero import LED

from gateway.hw.patterns import FRAME_S, Pattern
from gateway.hw.pinmap import LedPin, LedRole


class Panel:
    """One gpiozero LED per role; `show()` changes only the LEDs whose pattern changed."""

    def __init__(self, leds: dict[LedRole, LedPin], factory: Any) -> None:
        self._leds: dict[LedRole, Any] = {}
        try:
            for role, pin in leds.items():
                self._leds[role] = LED(pin.pin, initial_value=False, pin_factory=factory)
        except Exception:
            self.close()
            raise
        self._shown: dict[LedRole, Pattern] = {}

    def show(self, patterns: dict[LedRole, Pattern]) -> None:
        """Play these patterns (LEDs not named keep theirs)."""
        for role, pattern in patterns.items():
            if self._shown.get(role) == pattern:
                continue
            led = self._leds[role]
            frames = pattern.frames()
            if len(frames) == 1:
                led.source = None
                led.value = frames[0]
            else:
                # gpiozero plays the cycle in its own thread until the next pattern replaces it.
                led.source_delay = FRAME_S
                led.source = itertools.cycle(frames)
            self._shown[role] = pattern

    def toggle(self, role: LedRole) -> None:
        """Flip one LED (the power LED's heartbeat)."""
        self._leds[role].toggle()

    def close(self) -> None:
        """Switch every LED off and free the pins."""
        for led in self._leds.values():
            led.source = None
            led.off()
            led.close()
        self._leds.clear()
        self._shown.clear()
