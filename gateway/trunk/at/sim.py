"""SIM parsers: +CPIN."""

from __future__ import annotations

import enum

from gateway.trunk.at.fields import payload_of


class SimState(enum.StrEnum):
    """+CPIN: the SIM's lock state."""

    READY = "READY"
    SIM_PIN = "SIM PIN"
    SIM_PUK = "SIM PUK"
    SIM_PIN2 = "SIM PIN2"
    SIM_PUK2 = "SIM PUK2"
    PH_SIM_PIN = "PH-SIM PIN"
    NOT_INSERTED = "NOT INSERTED"
    NOT_READY = "NOT READY"


def parse_cpin(line: str) -> SimState:
    """Parse '+CPIN: READY' / '+CPIN: SIM PIN' / '+CPIN: NOT INSERTED'."""
    value = payload_of(line, "+CPIN").strip('"')
    try:
        return SimState(value)
    except ValueError:
        raise ValueError(f"unknown SIM state {value!r} in {line!r}") from None
