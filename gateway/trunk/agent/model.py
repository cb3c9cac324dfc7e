"""What the agent works with: its secrets, the minutes ledger, a trunk call and a modem slot."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.config import TrunkModemConfig
from gateway.fsmode import write_private
from gateway.trunk.bridge import ModemBridge
from gateway.trunk.call import CallState, EndReason
from gateway.trunk.driver import Modem
from gateway.trunk.errors import TrunkError
from gateway.trunk.link import LinkState

if TYPE_CHECKING:
    from gateway.trunk.agent.legs import Leg

# What a caller hears when the mobile/analog side ends a call before it was answered.
SIP_FOR_END = {
    EndReason.BUSY: (486, "Busy Here"),
    EndReason.NO_ANSWER: (480, "No Answer"),
    EndReason.REJECTED: (486, "Busy Here"),
    EndReason.UNREACHABLE: (503, "Mobile Network Unreachable"),
    EndReason.NORMAL: (480, "Temporarily Unavailable"),
    EndReason.MISSED: (487, "Request Terminated"),
    EndReason.LINE_LOST: (503, "Trunk Line Lost"),  # the modem went away or was reset under the call
    EndReason.LOCAL: (480, "Temporarily Unavailable"),  # we hung up first: _end gives its own answer
}


@dataclass(frozen=True)
class AgentSecrets:
    """What the daemon hands the agent on stdin (never on the command line or on disk)."""

    sip_host: str
    sip_port: int
    auth_user: str
    realm: str
    ha1: str
    control_socket: str
    caller_key: str  # checks Kamailio's caller stamp (gateway/sip/stamp.py); never logged
    media_host: str = "127.0.0.1"  # where phones send the call's audio (the daemon: sip.listen or the LAN side)


def read_pin(modem: TrunkModemConfig) -> str | None:
    """The SIM PIN from its file or environment variable; TrunkError naming the key if unreadable."""
    if modem.sim_pin_file is not None:
        try:
            pin = modem.sim_pin_file.read_text().strip()
        except OSError as err:
            raise TrunkError(f"trunk.modems[{modem.name}].sim_pin_file: {err.strerror}") from err
    elif modem.sim_pin_env is not None:
        pin = os.environ.get(modem.sim_pin_env, "").strip()
        if not pin:
            raise TrunkError(f"trunk.modems[{modem.name}].sim_pin_env: ${modem.sim_pin_env} is not set")
    else:
        return None
    if not re.fullmatch(r"[0-9]{4,8}", pin):
        raise TrunkError(f"trunk.modems[{modem.name}]: the SIM PIN must be 4 to 8 digits")  # not echoed
    return pin


class MinutesLedger:
    """Trunk minutes used today (non-emergency), persisted so a restart does not reset the cap."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.day = dt.date.today().isoformat()
        self.seconds = 0.0
        with contextlib.suppress(OSError, ValueError, KeyError):
            data = json.loads(path.read_text())
            if data["day"] == self.day:
                self.seconds = float(data["seconds"])

    def minutes_today(self) -> float:
        """Minutes used today."""
        self._roll()
        return self.seconds / 60

    def add(self, seconds: float) -> None:
        """Count a finished call."""
        self._roll()
        self.seconds += seconds
        write_private(self.path, json.dumps({"day": self.day, "seconds": self.seconds}))

    def _roll(self) -> None:
        today = dt.date.today().isoformat()
        if today != self.day:
            self.day, self.seconds = today, 0.0


@dataclass
class TrunkCall:
    """One call through a modem, with its SIP side."""

    id: int
    outgoing: bool
    slot: Slot
    number: str
    extension: str = ""
    emergency: bool = False
    leg: Leg | None = None  # the SIP leg carrying the audio
    ringing: list[Leg] = field(default_factory=list)  # inbound: ring-group legs not yet answered
    started: float = field(default_factory=time.monotonic)
    active_at: float | None = None
    ended: bool = False
    ring_task: asyncio.Task[None] | None = None
    transfer: Leg | None = None  # the leg a blind transfer is setting up
    uid: str = field(default_factory=lambda: uuid.uuid4().hex)  # joins the ring-group legs' records
    early: bool = False  # outbound: 183 sent, the phone hears the modem's audio before the answer
    callback: str = ""  # inbound: the PSAP calling back, so this extension (its emergency caller) rings first
    escalation: asyncio.Task[None] | None = None  # inbound call back: the ring group joins when this fires


class Slot:
    """A modem in the pool: driver, audio bridge, and its current call."""

    def __init__(self, name: str, modem: Modem, bridge: ModemBridge) -> None:
        self.name = name
        self.modem = modem
        self.bridge = bridge
        self.call: TrunkCall | None = None
        self.seconds_today = 0.0
        self.sim_number: str | None = None  # the SIM's own number, from the config: the emergency callback number

    @property
    def link(self) -> LinkState:
        """The modem's link state."""
        return self.modem.state

    @property
    def busy(self) -> bool:
        """Whether a call uses this modem."""
        return self.call is not None or self.modem.tracker.state is not CallState.IDLE

    @property
    def emergency_call(self) -> bool:
        """Whether that call is an emergency call."""
        return self.call is not None and self.call.emergency

    @property
    def emergency_capable(self) -> bool:
        """Whether the modem can dial an emergency number now (also in limited service)."""
        return self.modem.emergency_capable
