"""V.253 DLE shielding for analog voice modems: decode the modem's stream, encode ours.

In voice mode the sample stream and in-band events share one byte stream: `<DLE>x` is an event,
`<DLE><DLE>` a 0x10 data byte, `<DLE><ETX>` the end of the stream. A DLE may be the last byte of
one read and its code the first byte of the next, so the decoder keeps that one byte of state.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

DLE = 0x10
ETX = 0x03


class DleEvent(enum.StrEnum):
    """Shielded events the modem reports in the stream (V.253 table 14 and common extensions)."""

    BUSY = "b"
    DIAL_TONE = "d"
    SILENCE = "s"
    QUIET = "q"
    TX_UNDERRUN = "u"
    RX_OVERRUN = "o"
    RING = "R"
    OFF_HOOK = "h"  # local handset lifted (extension phone)
    ON_HOOK = "H"
    END_OF_STREAM = "\x03"
    CALLING_TONE = "c"
    FAX_TONE = "e"
    DATA_TONE = "a"
    LOOP_INTERRUPT = "l"
    LOOP_RESTORED = "L"
    RINGBACK = "r"


DTMF_DIGITS = frozenset("0123456789*#ABCD")
_EVENTS = {ord(e.value): e for e in DleEvent}
# What the host sends to end a stream (not events the modem reports).
HOST_END_RX_USR = b"\x10!"
HOST_END_RX_CONEXANT = b"\x10^"
HOST_END_TX = bytes([DLE, ETX])


@dataclass(frozen=True)
class Dtmf:
    """A DTMF digit the modem detected on the line."""

    digit: str


@dataclass(frozen=True)
class Unknown:
    """A shielded code this decoder does not know (kept so a log can say what it was)."""

    code: int


Item = bytes | DleEvent | Dtmf | Unknown


class DleDecoder:
    """Turn a DLE-shielded byte stream into sample bytes and events, across read boundaries."""

    def __init__(self) -> None:
        self._dle_pending = False
        self.ended = False

    def feed(self, data: bytes) -> list[Item]:
        """Decode data; sample bytes between events come out as bytes objects."""
        out: list[Item] = []
        samples = bytearray()
        i = 0
        if self._dle_pending and data:
            self._dle_pending = False
            self._code(data[0], samples, out)
            i = 1
        while i < len(data):
            j = data.find(DLE, i)
            if j < 0:
                samples += data[i:]
                break
            samples += data[i:j]
            if j + 1 >= len(data):
                self._dle_pending = True
                break
            self._code(data[j + 1], samples, out)
            i = j + 2
        if samples:
            out.append(bytes(samples))
        return out

    def _code(self, code: int, samples: bytearray, out: list[Item]) -> None:
        if code == DLE:
            samples.append(DLE)
            return
        if samples:
            out.append(bytes(samples))
            samples.clear()
        char = chr(code)
        if char in DTMF_DIGITS:
            out.append(Dtmf(char))
        elif code in _EVENTS:
            event = _EVENTS[code]
            if event is DleEvent.END_OF_STREAM:
                self.ended = True
            out.append(event)
        else:
            out.append(Unknown(code))


def decode(data: bytes) -> list[Item]:
    """Decode a complete stream in one go; ValueError if it ends inside an escape."""
    decoder = DleDecoder()
    items = decoder.feed(data)
    if decoder._dle_pending:
        raise ValueError("DLE stream ends with a lone DLE (0x10) byte")
    return items


def encode(samples: bytes) -> bytes:
    """Shield sample bytes for the modem: every 0x10 doubled."""
    return samples.replace(b"\x10", b"\x10\x10")


def encode_event(event: DleEvent | Dtmf) -> bytes:
    """The two bytes that carry one event or DTMF digit."""
    code = event.digit if isinstance(event, Dtmf) else event.value
    return bytes([DLE, ord(code)])


def u8_to_s16le(samples: bytes) -> bytes:
    """8-bit unsigned linear (AT+VSM=1 / 128) to 16-bit signed little-endian."""
    out = bytearray(len(samples) * 2)
    for k, value in enumerate(samples):
        s = (value - 128) << 8
        out[2 * k] = s & 0xFF
        out[2 * k + 1] = (s >> 8) & 0xFF
    return bytes(out)


def s16le_to_u8(pcm: bytes) -> bytes:
    """16-bit signed little-endian to 8-bit unsigned linear (truncating the low byte)."""
    if len(pcm) % 2:
        raise ValueError(f"S16LE needs an even number of bytes, got {len(pcm)}")
    return bytes(((pcm[k + 1] ^ 0x80) & 0xFF) for k in range(0, len(pcm), 2))
