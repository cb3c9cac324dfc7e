"""The front-panel button: how long it was held decides what it does."""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable
from typing import Any

from gpiozero import Button

from gateway.hw.pinmap import ButtonPin

# Defaults (the [hardware] config can change them): a drill at 3 s, the admin password reset at 10 s.
DRILL_HOLD_S = 3.0
RESET_HOLD_S = 10.0


class Gesture(enum.StrEnum):
    """What a press meant."""

    SHORT = "short"  # show the status on the LEDs
    DRILL = "drill"  # forced SURVIVAL that returns by itself
    RESET = "reset"  # new admin password, printed on the console


def classify(held_s: float, drill_s: float, reset_s: float) -> Gesture:
    """The gesture for a press held `held_s` seconds."""
    if held_s >= reset_s:
        return Gesture.RESET
    if held_s >= drill_s:
        return Gesture.DRILL
    return Gesture.SHORT


class ButtonWatcher:
    """Turns gpiozero's press/release edges (on its own thread) into calls on the event loop."""

    def __init__(
        self,
        pin: ButtonPin,
        factory: Any,
        loop: asyncio.AbstractEventLoop,
        on_press: Callable[[], None],
        on_release: Callable[[float], None],
    ) -> None:
        self._loop = loop
        self._on_press = on_press
        self._on_release = on_release
        self._pressed_at: float | None = None
        bounce = pin.bounce_ms / 1000 if pin.bounce_ms else None
        self._button = Button(pin.pin, pull_up=pin.pull_up, bounce_time=bounce, pin_factory=factory)
        self._button.when_pressed = self._pressed
        self._button.when_released = self._released

    def _pressed(self) -> None:
        self._pressed_at = time.monotonic()
        self._loop.call_soon_threadsafe(self._on_press)

    def _released(self) -> None:
        if self._pressed_at is None:
            return  # released before we saw it pressed (the daemon started mid-press)
        held = time.monotonic() - self._pressed_at
        self._pressed_at = None
        self._loop.call_soon_threadsafe(self._on_release, held)

    def close(self) -> None:
        """Free the pin."""
        self._button.close()
