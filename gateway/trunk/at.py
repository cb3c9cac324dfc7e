"""Pure AT wire code: line framing, final result codes, the URC/reply router, and line parsers.

Nothing here does I/O. The driver feeds bytes in and gets lines, replies and URCs out; parsers
turn one line into a small dataclass or raise ValueError with an exact message.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

# --------------------------------------------------------------------------- line framing


class LineSplitter:
    """Split the modem's byte stream into lines; a line may arrive across several reads."""

    def __init__(self, max_line: int = 4096) -> None:
        self._buf = bytearray()
        self._max = max_line

    def feed(self, data: bytes) -> list[str]:
        """Return the complete, non-empty lines in data (CR, LF or CRLF terminated)."""
        self._buf += data
        lines: list[str] = []
        while True:
            cut = _first_terminator(self._buf)
            if cut < 0:
                break
            raw = bytes(self._buf[:cut])
            del self._buf[: cut + 1]
            text = raw.decode("latin-1").strip()
            if text:
                lines.append(text)
        # The SMS prompt "> " ends without a line terminator: surface it as its own line.
        if self._buf.strip() == b">":
            self._buf.clear()
            lines.append(">")
        if len(self._buf) > self._max:
            # A modem spewing binary on the AT port (wrong port, or PCM) must not grow us forever.
            self._buf.clear()
            raise ValueError(f"line longer than {self._max} bytes without CR/LF")
        return lines

    @property
    def pending(self) -> bytes:
        """Bytes of an unfinished line."""
        return bytes(self._buf)


def _first_terminator(buf: bytearray) -> int:
    cr, lf = buf.find(b"\r"), buf.find(b"\n")
    if cr < 0:
        return lf
    if lf < 0:
        return cr
    return min(cr, lf)


# --------------------------------------------------------------------------- final result codes


class FinalKind(enum.StrEnum):
    """Final result codes that end a command (V.250 and 27.007)."""

    OK = "OK"
    ERROR = "ERROR"
    CME_ERROR = "+CME ERROR"
    CMS_ERROR = "+CMS ERROR"
    NO_CARRIER = "NO CARRIER"
    BUSY = "BUSY"
    NO_ANSWER = "NO ANSWER"
    NO_DIALTONE = "NO DIALTONE"
    CONNECT = "CONNECT"
    VCON = "VCON"
    PROMPT = ">"  # AT+CMGS waits for the message text

    @property
    def success(self) -> bool:
        """Whether the command succeeded."""
        return self in (FinalKind.OK, FinalKind.CONNECT, FinalKind.VCON, FinalKind.PROMPT)


# Result codes that only end a command which can produce them (otherwise they are unsolicited).
CALL_RESULTS = frozenset({FinalKind.NO_CARRIER, FinalKind.BUSY, FinalKind.NO_ANSWER, FinalKind.NO_DIALTONE})
STREAM_RESULTS = frozenset({FinalKind.CONNECT, FinalKind.VCON})


@dataclass(frozen=True)
class Final:
    """A final result code; `code` for +CME/+CMS ERROR, `text` the verbose message if any."""

    kind: FinalKind
    code: int | None = None
    text: str = ""

    def __str__(self) -> str:
        if self.kind in (FinalKind.CME_ERROR, FinalKind.CMS_ERROR):
            return f"{self.kind.value}: {self.text or self.code}"
        return self.kind.value


# +CME ERROR numbers (27.007 §9.2) a driver acts on; AT+CMEE=2 sends the text instead.
CME_TEXT_TO_CODE = {
    "phone failure": 0,
    "operation not allowed": 3,
    "operation not supported": 4,
    "sim not inserted": 10,
    "sim pin required": 11,
    "sim puk required": 12,
    "sim failure": 13,
    "sim busy": 14,
    "sim wrong": 15,
    "incorrect password": 16,
    "memory full": 20,
    "not found": 22,
    "no network service": 30,
    "network timeout": 31,
    "network not allowed - emergency calls only": 32,
    "unknown": 100,
}
CME_SIM_NOT_INSERTED = 10
CME_SIM_PIN_REQUIRED = 11
CME_SIM_PUK_REQUIRED = 12
CME_SIM_BUSY = 14
CME_INCORRECT_PASSWORD = 16


def parse_final(line: str) -> Final | None:
    """The final result code on this line, or None if it is not one."""
    simple = {k.value: k for k in FinalKind if k not in (FinalKind.CME_ERROR, FinalKind.CMS_ERROR)}
    if line in simple:
        return Final(simple[line])
    if line.startswith("CONNECT "):  # "CONNECT 9600": the rate is informational
        return Final(FinalKind.CONNECT, text=line[8:].strip())
    for kind in (FinalKind.CME_ERROR, FinalKind.CMS_ERROR):
        prefix = kind.value + ":"
        if line.startswith(prefix):
            rest = line[len(prefix) :].strip()
            if rest.isdigit():
                return Final(kind, int(rest))
            return Final(kind, CME_TEXT_TO_CODE.get(rest.lower()) if kind is FinalKind.CME_ERROR else None, rest)
    return None


# --------------------------------------------------------------------------- router


@dataclass(frozen=True)
class Urc:
    """An unsolicited line (with its continuation line, e.g. the text after +CMT)."""

    line: str
    extra: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The line's prefix up to the colon ("+CLIP", "RING", "^CEND")."""
        return urc_name(self.line)


@dataclass(frozen=True)
class Reply:
    """A command's complete answer: information lines and the final result."""

    command: str
    lines: tuple[str, ...]
    final: Final

    @property
    def ok(self) -> bool:
        """Whether the command succeeded."""
        return self.final.kind.success

    def line(self, prefix: str) -> str:
        """The first information line starting with prefix; ValueError if there is none."""
        for candidate in self.lines:
            if candidate.startswith(prefix):
                return candidate
        raise ValueError(f"{self.command}: no {prefix!r} line in reply {list(self.lines)!r}")


def urc_name(line: str) -> str:
    """The name of a line: text before ':' (or before '=' for V.253 caller ID), else the line."""
    for sep in (":", "="):
        head, found, _ = line.partition(sep)
        head = head.strip()
        # Names are short words ("VOICE CALL" has a space); a quote means we are inside data.
        if found and head and len(head) <= 16 and '"' not in head and "," not in head:
            return head
    return line


# Lines that are always unsolicited. Some names double as replies ("+CPIN: READY" after boot is a
# URC, as the answer to AT+CPIN? it is a reply): the router decides by what the command expects.
COMMON_URCS = frozenset(
    {
        "RING",
        "+CRING",
        "+CLIP",
        "+CCWA",
        "+CREG",
        "+CGREG",
        "+CEREG",
        "+CMTI",
        "+CMT",
        "+CDS",
        "+CUSD",
        "+CTZV",
        "+CTZE",
        "*PSUTTZ",
        "+CPIN",
        "+CFUN",
        "RDY",
        "+CLCC",
        "+QIND",
        "+QUSIM",
        "+QTONEDET",
        "VOICE CALL",
        "MISSED_CALL",
        "+RXDTMF",
        "+CPCMREG",
        "SMS DONE",
        "PB DONE",
        "^RSSI",
        "^HRSSILVL",
        "^MODE",
        "^BOOT",
        "^DSFLOWRPT",
        "^SRVST",
        "^SIMST",
        "^ORIG",
        "^CONF",
        "^CONN",
        "^CEND",
        "^RFSWITCH",
        "^NWTIME",
        "DATE",
        "TIME",
        "NMBR",
        "NAME",
        "MESG",
    }
)
# A URC whose payload is the next line (text-mode SMS delivery).
TWO_LINE_URCS = frozenset({"+CMT", "+CDS"})


def expected_prefix(command: str) -> str | None:
    """The information-line prefix a command answers with ("AT+CSQ" → "+CSQ"), if any."""
    body = command[2:] if command[:2].upper() == "AT" else command
    match = re.match(r"([+^*$][A-Za-z0-9]+)", body)
    return match.group(1).upper() if match else None


def _is_call_command(command: str) -> bool:
    upper = command.upper()
    return upper.startswith(("ATD", "ATA", "ATH", "AT+CHUP", "AT+QHUP", "AT+VTS", "AT+CHLD"))


def _is_stream_command(command: str) -> bool:
    upper = command.upper()
    return upper.startswith(("AT+VTX", "AT+VRX", "AT+VTR", "AT+VLS", "ATD")) and not upper.endswith(("?", "=?"))


@dataclass
class _Pending:
    command: str
    expect: str | None
    lines: list[str] = field(default_factory=list)


class AtRouter:
    """Separate command replies from URCs, line by line, for one outstanding command at a time."""

    def __init__(self, urcs: Iterable[str] = COMMON_URCS) -> None:
        self.urcs = frozenset(urcs)
        self._pending: _Pending | None = None
        self._cont: str | None = None  # a two-line URC waiting for its payload line

    @property
    def busy(self) -> bool:
        """Whether a command is outstanding."""
        return self._pending is not None

    def begin(self, command: str) -> None:
        """Start collecting the reply of command; one at a time."""
        if self._pending is not None:
            raise ValueError(f"{command}: {self._pending.command} is still outstanding")
        self._pending = _Pending(command, expected_prefix(command))

    def abandon(self) -> None:
        """Forget the outstanding command (it timed out)."""
        self._pending = None

    def feed(self, line: str) -> Urc | Reply | None:
        """Route one line: a URC, a completed Reply, or None while a reply is still open."""
        if self._cont is not None:
            head, self._cont = self._cont, None
            return Urc(head, (line,))
        pending = self._pending
        if pending is not None and line.upper() == pending.command.upper():
            return None  # the modem's echo (before ATE0)
        final = parse_final(line)
        if final is not None and pending is not None and self._ends(pending.command, final):
            self._pending = None
            return Reply(pending.command, tuple(pending.lines), final)
        if final is not None:
            return Urc(line)
        name = urc_name(line)
        if pending is not None and pending.expect is not None and name.upper() == pending.expect:
            pending.lines.append(line)
            return None
        if name in self.urcs:
            if name in TWO_LINE_URCS:
                self._cont = line
                return None
            return Urc(line)
        if pending is not None:
            pending.lines.append(line)  # identity lines etc. carry no prefix
            return None
        return Urc(line)

    @staticmethod
    def _ends(command: str, final: Final) -> bool:
        if final.kind in CALL_RESULTS:
            return _is_call_command(command)
        if final.kind in STREAM_RESULTS:
            return _is_stream_command(command)
        if final.kind is FinalKind.PROMPT:
            return command.upper().startswith(("AT+CMGS", "AT+CMGW"))
        return True


# --------------------------------------------------------------------------- parsers


def _payload(line: str, prefix: str) -> str:
    if not line.startswith(prefix + ":"):
        raise ValueError(f"expected a {prefix} line, got {line!r}")
    return line[len(prefix) + 1 :].strip()


def split_fields(payload: str) -> list[str]:
    """Split comma-separated AT fields, keeping commas inside quotes; quotes are removed."""
    fields: list[str] = []
    current: list[str] = []
    quoted = False
    for char in payload:
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            fields.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    if quoted:
        raise ValueError(f"unbalanced quotes in {payload!r}")
    fields.append("".join(current).strip())
    return fields


def _int(value: str, what: str, line: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{what} is not a number in {line!r}") from None


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
    fields = split_fields(_payload(line, "+CSQ"))
    if len(fields) != 2:
        raise ValueError(f"+CSQ needs 2 fields, got {len(fields)} in {line!r}")
    rssi, ber = _int(fields[0], "rssi", line), _int(fields[1], "ber", line)
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
    fields = split_fields(_payload(line, kind))
    if solicited:
        fields = fields[1:]
    if not fields or not fields[0]:
        raise ValueError(f"no registration status in {line!r}")
    stat_n = _int(fields[0], "stat", line)
    try:
        stat = RegStat(stat_n)
    except ValueError:
        raise ValueError(f"unknown registration status {stat_n} in {line!r}") from None
    lac = fields[1] or None if len(fields) > 1 else None
    ci = fields[2] or None if len(fields) > 2 else None
    act: AccessTech | None = None
    if len(fields) > 3 and fields[3]:
        act_n = _int(fields[3], "AcT", line)
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
    fields = split_fields(_payload(line, "+COPS"))
    mode = _int(fields[0], "mode", line)
    name = fields[2] if len(fields) > 2 and fields[2] else None
    act = None
    if len(fields) > 3 and fields[3]:
        act = AccessTech(_int(fields[3], "AcT", line))
    return Operator(mode, name, act)


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
    value = _payload(line, "+CPIN").strip('"')
    try:
        return SimState(value)
    except ValueError:
        raise ValueError(f"unknown SIM state {value!r} in {line!r}") from None


@dataclass(frozen=True)
class CallerId:
    """The calling party: number (None when withheld) and optional name."""

    number: str | None
    toa: int | None = None
    name: str | None = None


def parse_clip(line: str) -> CallerId:
    """Parse '+CLIP: "+4915112345678",145,"",0,"",0' (empty number: withheld)."""
    fields = split_fields(_payload(line, "+CLIP"))
    number = fields[0] or None
    toa = _int(fields[1], "type", line) if len(fields) > 1 and fields[1] else None
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
    dir_n, stat_n = _int(fields[1], "dir", line), _int(fields[2], "stat", line)
    if dir_n not in CallDir._value2member_map_ or stat_n not in CallStat._value2member_map_:
        raise ValueError(f"unknown call direction {dir_n} or state {stat_n} in {line!r}")
    direction, stat = CallDir(dir_n), CallStat(stat_n)
    number = fields[5] or None if len(fields) > 5 else None
    toa = _int(fields[6], "type", line) if len(fields) > 6 and fields[6] else None
    return CallEntry(
        idx=_int(fields[0], "idx", line),
        direction=direction,
        stat=stat,
        mode=_int(fields[3], "mode", line),
        mpty=fields[4] == "1",
        number=_international(number, toa),
        toa=toa,
    )


def parse_clcc(line: str) -> CallEntry:
    """Parse '+CLCC: 1,0,3,0,0,"+4930123456",145'."""
    return _call_entry(split_fields(_payload(line, "+CLCC")), line)


def parse_qind(line: str) -> CallEntry | tuple[str, list[str]]:
    """Parse Quectel +QIND: a "ccinfo" call entry, or (name, fields) for the others ("csq", "SMS DONE")."""
    fields = split_fields(_payload(line, "+QIND"))
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
    fields = split_fields(_payload(line, "^CEND"))
    if len(fields) < 3:
        raise ValueError(f"^CEND needs at least 3 fields, got {len(fields)} in {line!r}")
    cause = _int(fields[3], "cause", line) if len(fields) > 3 and fields[3] else None
    return CallEnd(
        _int(fields[0], "idx", line), _int(fields[1], "duration", line), _int(fields[2], "end status", line), cause
    )


def parse_huawei_call(line: str) -> tuple[str, int]:
    """Parse '^ORIG:1,0' / '^CONF:1' / '^CONN:1,0' into (name, call index)."""
    name = urc_name(line)
    if name not in ("^ORIG", "^CONF", "^CONN"):
        raise ValueError(f"expected ^ORIG/^CONF/^CONN, got {line!r}")
    fields = split_fields(_payload(line, name))
    return name, _int(fields[0], "idx", line)


@dataclass(frozen=True)
class VoiceCallEvent:
    """SIMCom 'VOICE CALL: BEGIN' / 'VOICE CALL: END: 000012' (duration HHMMSS)."""

    begin: bool
    duration_s: int | None = None


def parse_voice_call(line: str) -> VoiceCallEvent:
    """Parse SIMCom's VOICE CALL URC."""
    payload = _payload(line, "VOICE CALL")
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


def parse_cclk(line: str) -> dt.datetime:
    """Parse '+CCLK: "24/11/25,09:59:44+04"' (zone in quarter hours) into an aware datetime."""
    value = _payload(line, "+CCLK").strip('"')
    match = re.fullmatch(r"(\d{2})/(\d{2})/(\d{2}),(\d{2}):(\d{2}):(\d{2})(?:([+-])(\d{1,2}))?", value)
    if match is None:
        raise ValueError(f"+CCLK time must be yy/MM/dd,hh:mm:ss±zz, got {value!r}")
    yy, mo, dd, hh, mi, ss = (int(match.group(i)) for i in range(1, 7))
    quarters = int(match.group(8) or 0) * (-1 if match.group(7) == "-" else 1)
    try:
        return dt.datetime(2000 + yy, mo, dd, hh, mi, ss, tzinfo=dt.timezone(dt.timedelta(minutes=15 * quarters)))
    except ValueError as err:
        raise ValueError(f"+CCLK time {value!r} is not a valid date: {err}") from None


@dataclass(frozen=True)
class SmsIndication:
    """+CMTI: a new SMS stored at index in storage."""

    storage: str
    index: int


def parse_cmti(line: str) -> SmsIndication:
    """Parse '+CMTI: "SM",3'."""
    fields = split_fields(_payload(line, "+CMTI"))
    if len(fields) != 2:
        raise ValueError(f"+CMTI needs 2 fields, got {len(fields)} in {line!r}")
    return SmsIndication(fields[0], _int(fields[1], "index", line))


@dataclass(frozen=True)
class Sms:
    """A text-mode SMS: sender, service-centre time stamp, text."""

    sender: str | None
    time: dt.datetime | None
    text: str


def parse_cmt(header: str, text: str) -> Sms:
    """Parse a text-mode delivery '+CMT: "+4915…","","24/11/25,10:00:00+04"' plus its text line."""
    fields = split_fields(_payload(header, "+CMT"))
    if len(fields) < 3:
        raise ValueError(f"+CMT needs sender, alpha and time, got {header!r}")
    stamp = parse_cclk(f'+CCLK: "{fields[2]}"') if fields[2] else None
    return Sms(fields[0] or None, stamp, text)


def parse_cmgr(lines: tuple[str, ...]) -> Sms:
    """Parse a text-mode +CMGR reply: '+CMGR: "REC UNREAD","+49…","","24/…"' then the text."""
    if not lines or not lines[0].startswith("+CMGR:"):
        raise ValueError(f"expected a +CMGR reply, got {list(lines)!r}")
    fields = split_fields(_payload(lines[0], "+CMGR"))
    if len(fields) < 4:
        raise ValueError(f"+CMGR needs status, sender, alpha and time, got {lines[0]!r}")
    stamp = parse_cclk(f'+CCLK: "{fields[3]}"') if fields[3] else None
    return Sms(fields[1] or None, stamp, "\n".join(lines[1:]))


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


def quote(value: str) -> str:
    """Quote a string argument for an AT command; refuse characters that would break the line."""
    if any(c in value for c in '"\r\n\x1a\x1b'):
        raise ValueError(f"AT string argument may not contain quotes or control characters: {value!r}")
    return f'"{value}"'
