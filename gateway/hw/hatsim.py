"""A model of the HAT's relay stage, for tests and the lab: what the coil does for given pin levels.

The HAT (hardware/hat.md) feeds `kick` to the B input of a 74LVC1G123 retriggerable monostable and
`enable` to its active-low CLR; Q drives the coil's MOSFET. So the coil is on only while enable is
high and a rising edge of kick (or enable rising while kick is high) came less than `hold_s` ago.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RelayStageModel:
    """The monostable's output Q, from the pin changes fed in with their monotonic times."""

    hold_s: float
    enable: bool = False
    kick: bool = False
    triggered_at: float | None = None

    def pin_changed(self, role: str, level: bool, at: float) -> None:
        """Feed one pin change ("enable" or "kick") seen at monotonic time `at`."""
        if role == "enable":
            rising = level and not self.enable
            self.enable = level
            if not level:
                self.triggered_at = None  # CLR low resets Q at once
            elif rising and self.kick:
                self.triggered_at = at  # the '123 also triggers on CLR rising while B is high
        elif role == "kick":
            rising = level and not self.kick
            self.kick = level
            if rising and self.enable:
                self.triggered_at = at
        else:
            raise ValueError(f"unknown relay pin role {role!r} (expected 'enable' or 'kick')")

    def energised(self, now: float) -> bool:
        """Whether the coil is on at monotonic time `now`."""
        if not self.enable or self.triggered_at is None:
            return False
        return now - self.triggered_at < self.hold_s
