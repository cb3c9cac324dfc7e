"""Network parsers: signal (+CSQ), registration (+CREG/+CEREG), operator (+COPS), clock (+CCLK)."""

from __future__ import annotations

import datetime as dt
import enum
import re
from dataclasses import dataclass

from gateway.trunk.at.fields import as_int, payload_of, split_fields
from gateway.trunk.at.router import urc_name


@dataclass(frozen=True)
class Signal:
    """+CSQ: rssi 0–31 (99 unknown) and bit error rate."""

    rssi: int
    ber: int

    @property
    def dbm(self) -> int | None:
        """Received power in dBm, None when unknown."""
        return None if self.rssi == 99 else -113 + 2 * self.rssi

    @property
    def bars(self) -> int:
        """0–5 bars as phones show them."""
        if self.rssi == 99:
            return 0
        return min(5, (self.rssi + 5) // 6)


def parse_csq(line: str) -> Signal:
    """Parse '+CSQ: 23,99'."""
    fields = split_fields(payload_of(line, "+CSQ"))
    if len(fields) != 2:
        raise ValueError(f"+CSQ needs 2 fields, got {len(fields)} in {line!r}")
    rssi, ber = as_int(fields[0], "rssi", line), as_int(fields[1], "ber", line)
    if not (0 <= rssi <= 31 or rssi == 99):
        raise ValueError(f"rssi {rssi} out of range 0-31/99 in {line!r}")
    return Signal(rssi, ber)


class RegStat(enum.IntEnum):
    """27.007 registration status."""

    NOT_SEARCHING = 0
    HOME = 1
    SEARCHING = 2
    DENIED = 3
    UNKNOWN = 4
    ROAMING = 5
    SMS_ONLY_HOME = 6
    SMS_ONLY_ROAMING = 7
    EMERGENCY_ONLY = 8

    @property
    def registered(self) -> bool:
        """Registered for calls (home or roaming)."""
        return self in (RegStat.HOME, RegStat.ROAMING)


class AccessTech(enum.IntEnum):
    """27.007 <AcT>."""

    GSM = 0
    GSM_COMPACT = 1
    UTRAN = 2
    EDGE = 3
    HSDPA = 4
    HSUPA = 5
    HSPA = 6
    LTE = 7
    EC_GSM_IOT = 8
    LTE_M = 9
    LTE_NB = 10

    @property
    def lte(self) -> bool:
        """LTE of any kind (needs VoLTE for calls)."""
        return self in (AccessTech.LTE, AccessTech.LTE_M, AccessTech.LTE_NB)


@dataclass(frozen=True)
class Registration:
    """+CREG / +CGREG / +CEREG: which registry, status, location and access technology."""

    kind: str
    stat: RegStat
    lac: str | None = None
    ci: str | None = None
    act: AccessTech | None = None


def is_creg_read(line: str) -> bool:
    """Whether a +CREG/+CEREG line is the read reply (<n>,<stat>…) rather than the URC (<stat>,"lac"…).

    The two forms share a name, so a URC that arrives while AT+CREG? is outstanding looks like a
    reply line; the quoting tells them apart (the URC's second field is the quoted LAC/TAC).
    """
    raw = line.split(":", 1)[1].split(",") if ":" in line else []
    if len(raw) < 2:
        return False
    return not raw[1].strip().startswith('"')


def parse_creg(line: str, solicited: bool) -> Registration:
    """Parse +CREG/+CGREG/+CEREG; the read reply (solicited) carries <n> first, the URC does not."""
    kind = urc_name(line)
    if kind not in ("+CREG", "+CGREG", "+CEREG"):
        raise ValueError(f"expected a +CREG/+CGREG/+CEREG line, got {line!r}")
    fields = split_fields(payload_of(line, kind))
    if solicited:
        fields = fields[1:]
    if not fields or not fields[0]:
        raise ValueError(f"no registration status in {line!r}")
    stat_n = as_int(fields[0], "stat", line)
    try:
        stat = RegStat(stat_n)
    except ValueError:
        raise ValueError(f"unknown registration status {stat_n} in {line!r}") from None
    lac = fields[1] or None if len(fields) > 1 else None
    ci = fields[2] or None if len(fields) > 2 else None
    act: AccessTech | None = None
    if len(fields) > 3 and fields[3]:
        act_n = as_int(fields[3], "AcT", line)
        try:
            act = AccessTech(act_n)
        except ValueError:
            raise ValueError(f"unknown access technology {act_n} in {line!r}") from None
    return Registration(kind, stat, lac, ci, act)


@dataclass(frozen=True)
class Operator:
    """+COPS?: selection mode, operator name (or None when not registered) and AcT."""

    mode: int
    name: str | None
    act: AccessTech | None


def parse_cops(line: str) -> Operator:
    """Parse '+COPS: 0,0,"Vodafone.de",7' (or '+COPS: 0' when not registered)."""
    fields = split_fields(payload_of(line, "+COPS"))
    mode = as_int(fields[0], "mode", line)
    name = fields[2] if len(fields) > 2 and fields[2] else None
    act = None
    if len(fields) > 3 and fields[3]:
        act = AccessTech(as_int(fields[3], "AcT", line))
    return Operator(mode, name, act)


def parse_cclk(line: str) -> dt.datetime:
    """Parse '+CCLK: "24/11/25,09:59:44+04"' (zone in quarter hours) into an aware datetime."""
    value = payload_of(line, "+CCLK").strip('"')
    match = re.fullmatch(r"(\d{2})/(\d{2})/(\d{2}),(\d{2}):(\d{2}):(\d{2})(?:([+-])(\d{1,2}))?", value)
    if match is None:
        raise ValueError(f"+CCLK time must be yy/MM/dd,hh:mm:ss±zz, got {value!r}")
    yy, mo, dd, hh, mi, ss = (int(match.group(i)) for i in range(1, 7))
    quarters = int(match.group(8) or 0) * (-1 if match.group(7) == "-" else 1)
    try:
        return dt.datetime(2000 + yy, mo, dd, hh, mi, ss, tzinfo=dt.timezone(dt.timedelta(minutes=15 * quarters)))
    except ValueError as err:
        raise ValueError(f"+CCLK time {value!r} is not a valid date: {err}") from None
