"""The URC/reply router: which line answers the outstanding command and which is unsolicited."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from gateway.trunk.at.framing import CALL_RESULTS, STREAM_RESULTS, Final, FinalKind, parse_final


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
