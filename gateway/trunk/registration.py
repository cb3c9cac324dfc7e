"""What the modem says about its network and SIM: signal, registration, VoLTE, operator, clock, ICCID."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from gateway.trunk import at
from gateway.trunk.at_channel import AtChannel
from gateway.trunk.link import ModemStatus
from gateway.trunk.profiles import Family, Profile

_ICCID_COMMANDS = {Family.QUECTEL: "AT+QCCID", Family.SIMCOM: "AT+CICCID", Family.HUAWEI: "AT+CCID"}


async def poll(channel: AtChannel, profile: Profile, status: ModemStatus, on_urc: Callable[[at.Urc], None]) -> None:
    """Run the family's poll commands into status (signal, registration, operator, IMS when on LTE only)."""
    for command in profile.poll:
        reply = await channel.command(command)
        if reply.ok:
            for line in reply.lines:
                _poll_line(status, line, on_urc)
    cs, eps = status.cs, status.eps
    lte = eps is not None and eps.stat.registered
    if lte and not (cs is not None and cs.stat.registered):
        ims = await channel.command("AT+CIREG?")
        status.ims = ims.ok and bool(ims.lines) and at.split_fields(ims.lines[0].split(":", 1)[1])[-1] == "1"


def _poll_line(status: ModemStatus, line: str, on_urc: Callable[[at.Urc], None]) -> None:
    name = at.urc_name(line)
    if name in ("+CREG", "+CEREG") and not at.is_creg_read(line):
        on_urc(at.Urc(line))  # a registration URC that arrived inside the reply
        return
    if name == "+CSQ":
        status.signal = at.parse_csq(line)
    elif name == "+CREG":
        status.cs = at.parse_creg(line, solicited=True)
    elif name == "+CEREG":
        status.eps = at.parse_creg(line, solicited=True)
    elif name == "+COPS":
        status.operator = at.parse_cops(line).name


def voice(status: ModemStatus) -> tuple[bool, str | None]:
    """Whether calls can be placed on the registration in status, and the problem when they cannot."""
    cs, eps = status.cs, status.eps
    cs_ok = cs is not None and cs.stat.registered
    lte = eps is not None and eps.stat.registered
    if cs_ok or (lte and bool(status.ims)):
        return True, None
    if lte:
        return False, (
            "registered on LTE without VoLTE: data works but calls cannot be placed "
            "(enable VoLTE/IMS on the modem and SIM, or use a network with 2G/3G)"
        )
    if cs is not None and cs.stat is at.RegStat.DENIED:
        return False, "the network denied registration (SIM barred or not provisioned)"
    return False, "no network: searching" if cs is not None and cs.stat is at.RegStat.SEARCHING else "no network"


async def read_clock(channel: AtChannel, status: ModemStatus, log: Any) -> None:
    """Read the network's time (NITZ) into status, once the modem has received it."""
    reply = await channel.command("AT+CCLK?")
    if not reply.ok or not reply.lines:
        return
    try:
        when = at.parse_cclk(reply.line("+CCLK"))
    except ValueError as err:
        log.warning("bad modem clock", error=str(err))
        return
    if when.year < 2020:
        return  # no NITZ received yet: the modem's clock still runs from its epoch
    status.network_time, status.network_time_at = when, time.monotonic()


def network_time(status: ModemStatus) -> dt.datetime | None:
    """Network time now: the last one read, advanced by the monotonic clock."""
    if status.network_time is None or status.network_time_at is None:
        return None
    return status.network_time + dt.timedelta(seconds=time.monotonic() - status.network_time_at)


async def read_iccid(channel: AtChannel, family: Family) -> str | None:
    """The SIM's serial, or None where the family has no command for it or the SIM does not say."""
    # Each family has its own command (Quectel answers +QCCID, SIMCom +CICCID → +ICCID, the rest +CCID).
    command = _ICCID_COMMANDS.get(family)
    if command is None:
        return None
    reply = await channel.command(command)
    for line in reply.lines if reply.ok else ():
        value = line.split(":", 1)[-1].strip().strip('"')
        if value.isdigit() or (value[:-1].isdigit() and value[-1:] in "Ff"):
            return value
    return None
