"""What an emergency call tells people: the front desk's SIP MESSAGE and ring, the administrators' SMS, the webhook.

The trunk agent reports the call the moment it is dialled (on its /events stream); the
daemon adds who called and from where out of the directory, and sends the notice on every channel.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from gateway.config import EmergencyConfig
from gateway.mirror import repository as mirror_repository
from gateway.store import Store
from gateway.trunk.errors import TrunkError

log = structlog.get_logger("emergency")

SMS_CHARS = 150  # one SMS (160) less the "Lifeline: " the SMS channel puts in front


@dataclass(frozen=True)
class Caller:
    """The extension that dialled, as the directory knows it."""

    extension: str
    name: str = ""
    emergency_cid: str = ""  # the number the cloud presents for it (a modem presents its SIM's number)
    address: str = ""
    floor: str = ""
    room: str = ""

    @property
    def location(self) -> str:
        """Its dispatchable location on one line, or ""."""
        parts = [self.address, f"floor {self.floor}" if self.floor else "", f"room {self.room}" if self.room else ""]
        return ", ".join(p for p in parts if p)

    def location_dict(self) -> dict[str, str] | None:
        """Its location for the webhook, or None when the directory has none."""
        if not (self.address or self.floor or self.room):
            return None
        return {"address": self.address, "floor": self.floor, "room": self.room}


def lookup_caller(store: Store, extension: str) -> Caller:
    """The caller's name, emergency caller ID and location from the directory (blank when unknown)."""
    with store.read() as conn:
        found = mirror_repository.emergency_details(conn, extension)
    return Caller(extension) if found is None else Caller(extension, *found)


@dataclass(frozen=True)
class Notice:
    """One emergency call, told three ways."""

    text: str  # the SIP MESSAGE to the front desk: every detail, one per line
    summary: str  # one SMS
    data: dict[str, Any]  # the webhook's data (and the status page's event)
    display: str = ""  # a rung phone's display (emergency.ring); the agent trims and quotes it


def build_notice(event: dict[str, Any], caller: Caller, when: float) -> Notice:
    """The notice of the agent's emergency event, dialled at when (epoch s, the best clock's)."""
    local = dt.datetime.fromtimestamp(when).astimezone()
    number = str(event.get("number") or "")
    who = f"{caller.extension} {caller.name}".strip()
    window_min = round(int(event.get("callback_window_s") or 0) / 60)
    callback_number = event.get("callback_number")
    if event.get("service") == "limited":
        callback = f"none: limited service ({event.get('problem') or 'no usable SIM'}), the PSAP cannot call back"
    elif window_min:
        back = str(callback_number or "the trunk SIM's number")
        callback = f"{back}; a call to it in the next {window_min} min rings {caller.extension}"
    else:
        callback = str(callback_number or "the trunk SIM's number")
    lines = [
        f"EMERGENCY CALL to {number}",
        f"From: {who}",
        f"Location: {caller.location or 'not in the directory'}",
        f"Time: {local:%H:%M:%S} ({local:%Y-%m-%d %Z})",
        f"Callback: {callback}",
        f"Line: {event.get('modem')}" + (" (an ordinary call was cut for it)" if event.get("preempted") else ""),
        "Over the mobile line the PSAP sees the cell's location only: tell them the address.",
    ]
    where = f", {caller.location}" if caller.location else ""
    summary = f"EMERGENCY {number} from {who}{where} at {local:%H:%M}"
    if callback_number and event.get("service") != "limited":
        summary += f"; callback {callback_number}"
    data = {
        "summary": summary[:SMS_CHARS],
        "call": event.get("call"),
        "number": number,
        "extension": caller.extension,
        "name": caller.name,
        "location": caller.location_dict(),
        "emergency_cid": caller.emergency_cid or None,
        "callback_number": callback_number if event.get("service") != "limited" else None,
        "callback_rings": caller.extension if window_min else None,
        "callback_window_s": int(event.get("callback_window_s") or 0),
        "time": local.isoformat(),
        "modem": event.get("modem"),
        "service": event.get("service"),
        "problem": event.get("problem"),
        "preempted": bool(event.get("preempted")),
    }
    return Notice("\n".join(lines), summary[:SMS_CHARS], data, ring_display(number, caller))


def ring_display(number: str, caller: Caller) -> str:
    """`EMERGENCY 112: 1001 Alice Example, Floor 2 Room 204`: floor and room first (the desk knows the address)."""
    parts = [f"Floor {caller.floor}" if caller.floor else "", f"Room {caller.room}" if caller.room else ""]
    where = " ".join(p for p in parts if p) or caller.address
    who = f"{caller.extension} {caller.name}".strip()
    return f"EMERGENCY {number}: {who}" + (f", {where}" if where else "")


class Trunk(Protocol):
    """What notify_extensions needs of the trunk (gateway.trunk.supervisor.TrunkSupervisor)."""

    async def send_message(self, extensions: list[str], text: str) -> dict[str, str]:
        """SIP MESSAGEs, per-extension result."""

    async def ring(self, extensions: list[str], display: str, caller: str, ring_s: int) -> dict[str, str]:
        """A ring, per-extension first reply."""


RING_OK = ("ringing", "answered", "no reply yet")


async def notify_extensions(trunk: Trunk, config: EmergencyConfig, notice: Notice) -> dict[str, str]:
    """The SIP MESSAGE to config.notify and the ring of config.ring, at once; the notice's `notified`.

    Keys: each notify extension ("sent" or why not), and "ring:" + each ring extension (its phone's
    first reply: "ringing", or the refusal such as "480 Temporarily Unavailable"). Never raises.
    """

    async def message() -> dict[str, str]:
        if not config.notify:
            return {}
        try:
            return await trunk.send_message(list(config.notify), notice.text)
        except TrunkError as err:
            return dict.fromkeys(config.notify, str(err))

    async def ring() -> dict[str, str]:
        if not config.ring:
            return {}
        extension = str(notice.data.get("extension") or "")
        try:
            rung = await trunk.ring(list(config.ring), notice.display, extension, config.ring_s)
        except TrunkError as err:
            rung = dict.fromkeys(config.ring, str(err))
        return {f"ring:{ext}": result for ext, result in rung.items()}

    sent, rung = await asyncio.gather(message(), ring())
    if any(result != "sent" for result in sent.values()):
        log.error("emergency notification not sent to every extension", results=sent)
    if any(result not in RING_OK for result in rung.values()):
        log.error("emergency ring did not reach every extension", results=rung)
    return {**sent, **rung}
