"""What the status LEDs show: pure functions from the daemon's state to blink patterns."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gateway.core.mode import Mode
from gateway.hw.pinmap import LedRole

# Patterns are drawn on a 100 ms grid: gpiozero plays them as a cycle of frames.
FRAME_S = 0.1


class FaultClass(enum.IntEnum):
    """What is wrong, most urgent first; the value is the red LED's blink count."""

    SIP = 1  # Kamailio (the SIP data plane) is not running
    TRUNK = 2  # a trunk is configured but its modem or line is not usable
    STORAGE = 3  # the database cannot be written (card full or failing)
    NETWORK = 4  # no LAN address or link
    POWER = 5  # the Pi reports under-voltage (often: modem powered from the Pi's USB)


@dataclass(frozen=True)
class Pattern:
    """One LED's cycle: `count` pulses of `on_s`/`off_s`, then `pause_s` dark; count 0 = steady."""

    on_s: float = 0.0
    off_s: float = 0.0
    count: int = 0
    pause_s: float = 0.0
    steady: bool = False

    def frames(self) -> tuple[bool, ...]:
        """The cycle as 100 ms frames (what gpiozero's `source` plays)."""
        if self.count == 0:
            return (self.steady,)
        on, off, pause = _frames(self.on_s), _frames(self.off_s), _frames(self.pause_s)
        cycle = ((True,) * on + (False,) * off) * self.count
        return cycle + (False,) * pause


OFF = Pattern()
ON = Pattern(steady=True)
SLOW_BLINK = Pattern(on_s=0.5, off_s=0.5, count=1)
FAST_BLINK = Pattern(on_s=0.1, off_s=0.1, count=1)


def _frames(seconds: float) -> int:
    return round(seconds / FRAME_S)


def counted(count: int) -> Pattern:
    """`count` short blinks, then a pause: how fault classes and signal bars are shown."""
    return Pattern(on_s=0.2, off_s=0.3, count=count, pause_s=1.5)


@dataclass(frozen=True)
class TrunkView:
    """What the trunk LED needs to know: None = no trunk configured."""

    kind: str  # "gsm" or "analog"
    usable: bool
    bars: int = 0  # 0..5 for GSM/LTE


@dataclass(frozen=True)
class PanelState:
    """Everything the LEDs show."""

    mode: Mode
    drill: bool = False
    faults: frozenset[FaultClass] = frozenset()
    trunk: TrunkView | None = None
    lamp_test: bool = False


def display(state: PanelState) -> dict[LedRole, Pattern]:
    """The pattern of every LED except the power LED (the health loop toggles that one)."""
    if state.lamp_test:
        return {role: ON for role in LedRole if role is not LedRole.POWER}
    normal, survival = _mode_patterns(state.mode, state.drill)
    fault = counted(min(state.faults).value) if state.faults else OFF
    return {
        LedRole.NORMAL: normal,
        LedRole.SURVIVAL: survival,
        LedRole.FAULT: fault,
        LedRole.TRUNK: _trunk_pattern(state.trunk),
    }


def _mode_patterns(mode: Mode, drill: bool) -> tuple[Pattern, Pattern]:
    if drill:
        return OFF, SLOW_BLINK
    match mode:
        case Mode.NORMAL:
            return ON, OFF
        case Mode.SUSPECT:
            return SLOW_BLINK, OFF
        case Mode.SURVIVAL:
            return OFF, ON
        case Mode.RECOVERING:
            return SLOW_BLINK, ON


def _trunk_pattern(trunk: TrunkView | None) -> Pattern:
    if trunk is None or not trunk.usable:
        return OFF
    if trunk.kind == "analog":
        return ON
    return counted(max(1, min(5, trunk.bars)))
