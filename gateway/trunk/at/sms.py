"""SMS parsers: +CMTI indications, +CMT and +CMGR messages."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from gateway.trunk.at.fields import as_int, payload_of, split_fields
from gateway.trunk.at.network import parse_cclk


@dataclass(frozen=True)
class SmsIndication:
    """+CMTI: a new SMS stored at index in storage."""

    storage: str
    index: int


def parse_cmti(line: str) -> SmsIndication:
    """Parse '+CMTI: "SM",3'."""
    fields = split_fields(payload_of(line, "+CMTI"))
    if len(fields) != 2:
        raise ValueError(f"+CMTI needs 2 fields, got {len(fields)} in {line!r}")
    return SmsIndication(fields[0], as_int(fields[1], "index", line))


@dataclass(frozen=True)
class Sms:
    """A text-mode SMS: sender, service-centre time stamp, text."""

    sender: str | None
    time: dt.datetime | None
    text: str


def parse_cmt(header: str, text: str) -> Sms:
    """Parse a text-mode delivery '+CMT: "+4915…","","24/11/25,10:00:00+04"' plus its text line."""
    fields = split_fields(payload_of(header, "+CMT"))
    if len(fields) < 3:
        raise ValueError(f"+CMT needs sender, alpha and time, got {header!r}")
    stamp = parse_cclk(f'+CCLK: "{fields[2]}"') if fields[2] else None
    return Sms(fields[0] or None, stamp, text)


def parse_cmgr(lines: tuple[str, ...]) -> Sms:
    """Parse a text-mode +CMGR reply: '+CMGR: "REC UNREAD","+49…","","24/…"' then the text."""
    if not lines or not lines[0].startswith("+CMGR:"):
        raise ValueError(f"expected a +CMGR reply, got {list(lines)!r}")
    fields = split_fields(payload_of(lines[0], "+CMGR"))
    if len(fields) < 4:
        raise ValueError(f"+CMGR needs status, sender, alpha and time, got {lines[0]!r}")
    stamp = parse_cclk(f'+CCLK: "{fields[3]}"') if fields[3] else None
    return Sms(fields[1] or None, stamp, "\n".join(lines[1:]))
