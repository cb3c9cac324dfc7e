"""Call parsers: caller id (+CLIP, V.253), call lists (+CLCC, +QIND), call ends (+CEND, ^CEND, VOICE CALL)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gateway.trunk.at.fields import as_int, payload_of, split_fields
from gateway.trunk.at.router import urc_name


@dataclass(frozen=True)
class CallerId:
    """The calling party: number (None when withheld) and optional name."""

    number: str | None
    toa: int | None = None
    name: str | None = None


def parse_clip(line: str) -> CallerId:
    """Parse '+CLIP: "+4915112345678",145,"",0,"",0' (empty number: withheld)."""
    fields = split_fields(payload_of(line, "+CLIP"))
    number = fields[0] or None
    toa = as_int(fields[1], "type", line) if len(fields) > 1 and fields[1] else None
    name = fields[4] if len(fields) > 4 and fields[4] else None
    # CLI validity 1 (withheld) / 2 (not available) in field 6.
    if len(fields) > 5 and fields[5] in ("1", "2"):
        number = None
    return CallerId(_international(number, toa), toa, name)


def _international(number: str | None, toa: int | None) -> str | None:
    # Type of address 145 = international: some modems omit the '+'.
    if number and toa == 145 and not number.startswith("+"):
        return "+" + number
    return number


class CallDir(enum.IntEnum):
    """+CLCC <dir>."""

    OUTGOING = 0
    INCOMING = 1


class CallStat(enum.IntEnum):
    """+CLCC <stat>."""

    ACTIVE = 0
    HELD = 1
    DIALING = 2
    ALERTING = 3
    INCOMING = 4
    WAITING = 5
    DISCONNECTED = 6  # Quectel ccinfo and SIMCom report the end this way


@dataclass(frozen=True)
class CallEntry:
    """One call as +CLCC or Quectel's +QIND: "ccinfo" reports it."""

    idx: int
    direction: CallDir
    stat: CallStat
    mode: int
    mpty: bool
    number: str | None
    toa: int | None


def _call_entry(fields: list[str], line: str) -> CallEntry:
    if len(fields) < 5:
        raise ValueError(f"call entry needs at least 5 fields, got {len(fields)} in {line!r}")
    dir_n, stat_n = as_int(fields[1], "dir", line), as_int(fields[2], "stat", line)
    if dir_n not in CallDir._value2member_map_ or stat_n not in CallStat._value2member_map_:
        raise ValueError(f"unknown call direction {dir_n} or state {stat_n} in {line!r}")
    direction, stat = CallDir(dir_n), CallStat(stat_n)
    number = fields[5] or None if len(fields) > 5 else None
    toa = as_int(fields[6], "type", line) if len(fields) > 6 and fields[6] else None
    return CallEntry(
        idx=as_int(fields[0], "idx", line),
        direction=direction,
        stat=stat,
        mode=as_int(fields[3], "mode", line),
        mpty=fields[4] == "1",
        number=_international(number, toa),
        toa=toa,
    )


def parse_clcc(line: str) -> CallEntry:
    """Parse '+CLCC: 1,0,3,0,0,"+4930123456",145'."""
    return _call_entry(split_fields(payload_of(line, "+CLCC")), line)


def parse_qind(line: str) -> CallEntry | tuple[str, list[str]]:
    """Parse Quectel +QIND: a "ccinfo" call entry, or (name, fields) for the others ("csq", "SMS DONE")."""
    fields = split_fields(payload_of(line, "+QIND"))
    if fields[0] == "ccinfo":
        return _call_entry(fields[1:], line)
    return fields[0], fields[1:]


@dataclass(frozen=True)
class CallEnd:
    """Huawei ^CEND: call index, duration in seconds, end status and network cause."""

    idx: int
    duration_s: int
    end_status: int
    cause: int | None


def parse_cend(line: str) -> CallEnd:
    """Parse '^CEND:1,0,104,16' (the cause is absent when the network gave none)."""
    fields = split_fields(payload_of(line, "^CEND"))
    if len(fields) < 3:
        raise ValueError(f"^CEND needs at least 3 fields, got {len(fields)} in {line!r}")
    cause = as_int(fields[3], "cause", line) if len(fields) > 3 and fields[3] else None
    return CallEnd(
        as_int(fields[0], "idx", line),
        as_int(fields[1], "duration", line),
        as_int(fields[2], "end status", line),
        cause,
    )


def parse_huawei_call(line: str) -> tuple[str, int]:
    """Parse '^ORIG:1,0' / '^CONF:1' / '^CONN:1,0' into (name, call index)."""
    name = urc_name(line)
    if name not in ("^ORIG", "^CONF", "^CONN"):
        raise ValueError(f"expected ^ORIG/^CONF/^CONN, got {line!r}")
    fields = split_fields(payload_of(line, name))
    return name, as_int(fields[0], "idx", line)


@dataclass(frozen=True)
class VoiceCallEvent:
    """SIMCom 'VOICE CALL: BEGIN' / 'VOICE CALL: END: 000012' (duration HHMMSS)."""

    begin: bool
    duration_s: int | None = None


def parse_voice_call(line: str) -> VoiceCallEvent:
    """Parse SIMCom's VOICE CALL URC."""
    payload = payload_of(line, "VOICE CALL")
    if payload == "BEGIN":
        return VoiceCallEvent(True)
    if payload.startswith("END"):
        rest = payload[3:].lstrip(": ").strip()
        if not rest:
            return VoiceCallEvent(False)
        if not (rest.isdigit() and len(rest) == 6):
            raise ValueError(f"VOICE CALL END duration must be HHMMSS, got {rest!r}")
        return VoiceCallEvent(False, int(rest[:2]) * 3600 + int(rest[2:4]) * 60 + int(rest[4:]))
    raise ValueError(f"unknown VOICE CALL event {payload!r}")


@dataclass(frozen=True)
class V253CallerId:
    """Caller ID lines an analog modem sends between RINGs (AT+VCID=1)."""

    number: str | None = None
    name: str | None = None
    date: str | None = None
    time: str | None = None


def merge_v253_cid(cid: V253CallerId, line: str) -> V253CallerId:
    """Fold one 'NMBR = 5551234' / 'NAME=…' / 'DATE=1125' / 'TIME=0959' line into cid."""
    key, sep, value = line.partition("=")
    key, value = key.strip().upper(), value.strip()
    if not sep or key not in ("NMBR", "NAME", "DATE", "TIME", "MESG"):
        raise ValueError(f"not a caller ID line: {line!r}")
    if key == "NMBR":
        # "P" private, "O" out of area: no number to show.
        return V253CallerId(None if value in ("P", "O") else value, cid.name, cid.date, cid.time)
    if key == "NAME":
        return V253CallerId(cid.number, value or None, cid.date, cid.time)
    if key == "DATE":
        return V253CallerId(cid.number, cid.name, value, cid.time)
    if key == "TIME":
        return V253CallerId(cid.number, cid.name, cid.date, value)
    return cid
