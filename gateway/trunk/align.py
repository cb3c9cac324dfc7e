"""Sample alignment of a modem's 16-bit PCM byte stream, found again from the audio itself.

A modem's PCM tty carries bare S16LE samples with no framing. When the stream loses an odd number
of bytes (a USB serial overrun, a stalled reader, a read that ended mid-sample between calls), every
later sample is built from the wrong two bytes and speech turns into loud noise — for the rest of
the call, since nothing in the bytes marks where a sample starts.

The audio itself does. In an aligned stream the high byte of each sample moves slowly from one
sample to the next (telephone audio is mostly low-pass), while the low byte is close to random. A
stream off by one byte has them swapped: its "high" bytes are the real low bytes and jump about.
So each frame is scored twice — as it is, and one byte later — by the mean step between
consecutive high bytes; when the one-byte-later reading is clearly smoother for `votes` frames in a
row, the stream is realigned by skipping a byte. Even losses need nothing (samples stay whole);
three lost bytes are fixed like one. A frame under suspicion is not passed on while the vote runs:
silence goes out in its place, since a burst of near-full-scale noise upsets a phone's codec (Speex,
Opus: their gain and predictor states take half a second to settle) far longer than it lasts.

Limits, by construction: digital silence reads the same either way (and sounds the same), and a
sustained near-full-scale tone close to 4 kHz is as rough as noise when aligned, so it is never
taken as a reason to realign on its own (see `RATIO` and `FLOOR`). Pure code: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import sub

# Maps a byte read as a signed high byte (two's complement) to offset binary, so that the step from
# 0xFF (-1) to 0x00 (0) is 1, not 255.
_OFFSET_BINARY = bytes((b + 128) & 0xFF for b in range(256))

RATIO = 1.6  # how much smoother the shifted reading must be (a pure 1 kHz tone gives 2.0, speech 10+)
FLOOR = 2.0  # mean high-byte step below which the audio is too quiet to tell (and misalignment is inaudible)
PROBE_SAMPLES = 80  # scored per frame: half a 20 ms frame at 8 kHz keeps the cost near 30 µs a frame
VOTES = 2  # frames in a row that must agree: one frame of a loud transient does not move the stream


def roughness(frame: bytes, phase: int = 0, samples: int = PROBE_SAMPLES) -> float:
    """Mean step between consecutive high bytes of frame read from byte `phase` on (0: as is, 1: a byte later)."""
    high = frame[phase + 1 : phase + 1 + 2 * samples : 2].translate(_OFFSET_BINARY)
    if len(high) < 2:
        return 0.0
    steps: int = sum(map(abs, map(sub, high[1:], high)))
    return steps / (len(high) - 1)


def misaligned(frame: bytes) -> bool:
    """Whether frame reads clearly better one byte later (a single frame's verdict)."""
    here = roughness(frame, 0)
    return here > FLOOR and roughness(frame, 1) * RATIO < here


@dataclass
class AlignStats:
    """What the aligner did (for status, logs and the bench)."""

    realignments: int = 0  # bytes skipped because the audio said the stream was off by one
    concealed: int = 0  # frames replaced by silence while under suspicion
    position_skips: int = 0  # bytes skipped because a read began mid-sample after dropped audio


class FrameAligner:
    """Cuts a PCM byte stream into sample-aligned frames, realigning after lost bytes."""

    def __init__(self, frame_bytes: int, votes: int = VOTES) -> None:
        self.frame_bytes = frame_bytes
        self.votes_needed = votes
        self.stats = AlignStats()
        self._buf = bytearray()
        self._votes = 0
        # Parity of the stream positions where samples start: 0 from the port's opening, flipped by
        # each realignment (the bytes lost before it shifted every later sample by one).
        self._phase = 0

    def reset(self) -> None:
        """Forget any partial frame (a call ended); the stream's sample phase stays as found."""
        self._buf.clear()
        self._votes = 0

    def feed(self, data: bytes, position: int) -> list[bytes]:
        """Bytes read from the stream at byte `position` (since the port opened); the frames now complete."""
        buf = self._buf
        if not buf and position % 2 != self._phase:
            # Audio between calls is read and dropped: a read that ended mid-sample leaves the next
            # one starting on a sample's second byte. Skip it rather than wait for the audio to tell.
            data = data[1:]
            self.stats.position_skips += 1
        size = self.frame_bytes
        if not buf and len(data) == size:
            # The usual read is exactly one frame: no copy unless it is off.
            return self._checked(bytes(data))
        buf += data
        frames: list[bytes] = []
        while len(buf) >= size:
            frame = bytes(buf[:size])
            del buf[:size]
            frames.extend(self._checked(frame))
        return frames

    def _checked(self, frame: bytes) -> list[bytes]:
        if not misaligned(frame):
            self._votes = 0
            return [frame]
        self._votes += 1
        if self._votes < self.votes_needed:
            self.stats.concealed += 1
            return [bytes(len(frame))]  # not sure yet: silence rather than what is probably noise
        # Skip one byte and cut this frame again from there, so it already goes out clean.
        self._votes = 0
        self._phase ^= 1
        self.stats.realignments += 1
        self._buf[:0] = frame[1:]
        if len(self._buf) < self.frame_bytes:
            return []
        again = bytes(self._buf[: self.frame_bytes])
        del self._buf[: self.frame_bytes]
        return [again]
