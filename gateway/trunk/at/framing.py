"""Line framing and final result codes: bytes in, lines and OK/ERROR/+CME ERROR out."""

from __future__ import annotations

import enum
from dataclasses import dataclass


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
