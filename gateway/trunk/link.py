"""The modem link's vocabulary: its states, its status, its settings and timeouts, the USB reset it may use."""

from __future__ import annotations

import datetime as dt
import enum
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.trunk import at
from gateway.trunk.call import CallState
from gateway.trunk.ports import ModemPorts


class LinkState(enum.StrEnum):
    """Where the modem link is."""

    ABSENT = "absent"  # no ports found
    PROBE = "probe"  # ports open, waiting for AT → OK, identifying
    SIM = "sim"  # SIM locked, missing or busy
    CONFIG = "config"  # sending the family's init commands
    REGISTERING = "registering"  # waiting for a network that can carry calls
    READY = "ready"
    RESET = "reset"  # recovery ladder in progress


# Limited service (3GPP TS 22.101 §10.1): a modem that answers AT places emergency calls whatever its
# SIM (none, PIN or PUK locked) or registration (searching, denied: +CREG: 3), on any cell it can camp
# on. These are the states in which it still may, once its audio is configured.
LIMITED_SERVICE = frozenset({LinkState.SIM, LinkState.REGISTERING})


@dataclass(frozen=True)
class Timeouts:
    """How long to wait for things (seconds). Tests shrink them; ATD/ATA stay generous."""

    command: float = 5.0
    call: float = 20.0  # ATD/ATA/SMS: real modems take seconds; a short timeout causes reset loops (≥ 10 s)
    boot: float = 30.0  # from ports appearing to AT → OK
    port_drop: float = 15.0  # from AT+CFUN=1,1 → OK to the port going away
    reenumerate: float = 60.0  # from the port going away to it coming back
    poll: float = 30.0  # signal / registration / clock refresh while READY
    retry: float = 5.0  # between looks for ports, SIM and registration checks
    frame_gap: float = 0.2  # no PCM for this long in an active call counts as a stall

    def for_command(self, command: str) -> float:
        """The timeout of one command: long for dialling, answering and SMS."""
        upper = command.upper()
        if upper.startswith(("ATD", "ATA", "AT+CMGS", "AT+COPS=")):
            return self.call
        if upper.startswith(("AT+CFUN=", "AT+CRESET")):
            return self.port_drop
        return self.command

    def scaled(self, factor: float) -> Timeouts:
        """All timeouts multiplied by factor (for simulated modems with scaled delays)."""
        return Timeouts(**{k: v * factor for k, v in self.__dict__.items()})


class UsbReset(Protocol):
    """The last rung of the ladder: reset (or power-cycle) the modem's USB device."""

    async def reset(self, ports: ModemPorts | None) -> bool:
        """Reset the device; False when this installation cannot."""
        ...


class NoUsbReset:
    """An installation with no way to power-cycle the modem (no uhubctl-capable hub)."""

    async def reset(self, ports: ModemPorts | None) -> bool:
        """Cannot reset: says so."""
        return False


@dataclass
class ModemStatus:
    """What `lifeline status` shows about one modem."""

    state: LinkState = LinkState.ABSENT
    since: float = field(default_factory=time.time)
    reason: str = "starting"
    problem: str | None = None
    ident: str | None = None
    model: str | None = None
    firmware: str | None = None
    imei: str | None = None
    iccid: str | None = None  # the SIM card's serial: what a carrier's bill names
    operator: str | None = None
    signal: at.Signal | None = None
    cs: at.Registration | None = None
    eps: at.Registration | None = None
    ims: bool | None = None
    voice: bool = False
    call: CallState = CallState.IDLE
    resets: int = 0
    stalls: int = 0
    realignments: int = 0  # PCM sample alignment found again from the audio after lost bytes
    network_time: dt.datetime | None = None
    network_time_at: float | None = None  # time.monotonic() when read
    emergency_only: bool = False  # limited service: no usable SIM or registration, emergency calls still go

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "state": self.state.value,
            "since": self.since,
            "reason": self.reason,
            "problem": self.problem,
            "ident": self.ident,
            "model": self.model,
            "firmware": self.firmware,
            "operator": self.operator,
            "signal": None
            if self.signal is None
            else {"rssi": self.signal.rssi, "dbm": self.signal.dbm, "bars": self.signal.bars},
            "registered": self.voice,
            "access": None if self.eps is None or self.eps.act is None else self.eps.act.name,
            "call": self.call.value,
            "resets": self.resets,
            "stalls": self.stalls,
            "realignments": self.realignments,
            "emergency_only": self.emergency_only,
            "network_time": self.network_time.isoformat() if self.network_time else None,
        }


@dataclass(frozen=True)
class ModemSettings:
    """Per-modem settings from the config."""

    name: str = "modem0"
    pin: str | None = None  # never logged
    timeouts: Timeouts = Timeouts()
    mic_gain: int | None = None  # in the family's units (profiles.Gain); None leaves the modem's own
    speaker_gain: int | None = None
