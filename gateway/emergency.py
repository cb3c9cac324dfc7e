"""What an emergency call tells people: the front desk's SIP MESSAGE, the administrators' SMS, the webhook.

The trunk agent reports the call the moment it is dialled (its /emergency-events long poll); the
daemon adds who called and from where out of the directory, and sends the notice on every channel.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from gateway.store import Store

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
        row = conn.execute(
            "SELECT display_name, emergency_cid, location_address, location_floor, location_room"
            " FROM extensions WHERE number = ?",
            [extension],
        ).fetchone()
    if row is None:
        return Caller(extension)
    return Caller(extension, *(str(value or "") for value in row))


@dataclass(frozen=True)
class Notice:
    """One emergency call, told three ways."""

    text: str  # the SIP MESSAGE to the front desk: every detail, one per line
    summary: str  # one SMS
    data: dict[str, Any]  # the webhook's data (and the status page's event)


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
    return Notice("\n".join(lines), summary[:SMS_CHARS], data)
