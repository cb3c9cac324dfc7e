"""The audio bridge between a modem's PCM and a pjsua2 call: an AudioMediaPort and two drift buffers.

The modem is the master clock: each frame it sends is pushed towards the phone, and answered at
once with one frame from the phone (silence when there is none) — read one, write one. pjsua2's
conference bridge pulls and pushes on its own (null device) clock from its own thread; the
DriftBuffers between the two absorb jitter and drift. Callbacks only copy bytes (pjproject #3125).
"""

from __future__ import annotations

import contextlib
import ctypes
from typing import Any

import pjsua2 as pj

from gateway.trunk.jitter import DriftBuffer

FRAME_BYTES = 320  # the modem's 20 ms of 8 kHz S16LE mono
BYTES_PER_MS = 16
JITTER_MARGIN = 4 * BYTES_PER_MS  # what the fill may lack at the worst moment without an underrun


def audio_format(clock_rate: int = 8000, ptime_ms: int = 20) -> Any:
    """pjsua2's description of 16-bit mono frames of ptime_ms at clock_rate."""
    fmt = pj.MediaFormatAudio()
    fmt.type = pj.PJMEDIA_TYPE_AUDIO
    fmt.clockRate = clock_rate
    fmt.channelCount = 1
    fmt.bitsPerSample = 16
    fmt.frameTimeUsec = ptime_ms * 1000
    return fmt


def targets(ptime_ms: int) -> tuple[int, int]:
    """Fill targets (bytes, seen at pull time) for modem → phone and phone → modem.

    Between two pulls the other clock may deliver one chunk fewer than usual when their phases
    cross (a slip), so each buffer holds one pull plus one push beyond the pull, plus a margin.
    """
    pj_bytes = ptime_ms * BYTES_PER_MS
    down = pj_bytes + FRAME_BYTES + JITTER_MARGIN  # pulled by pjsua2 in pj_bytes, pushed in modem frames
    up = FRAME_BYTES + pj_bytes + JITTER_MARGIN  # pulled by the modem in frames, pushed by pjsua2
    return down, up


class _VectorReader:
    """Copies a pjsua2 ByteVector into bytes without iterating it in Python.

    `bytes(frame.buf)` walks the SWIG vector one element at a time: 260 µs per 20 ms frame, over a
    percent of a core per call for nothing. A std::vector<unsigned char> is three pointers (begin,
    end, capacity end) in the Itanium C++ ABI that Linux uses, so the data can be copied in one go.
    The layout is checked against the slow path on first use; if it ever differs, the slow path stays.
    """

    def __init__(self) -> None:
        self.fast: bool | None = None  # unknown until the first frame

    def __call__(self, vector: Any) -> bytes:
        """The vector's bytes."""
        if self.fast is False:
            return bytes(vector)
        address = int(vector.this)
        begin = ctypes.c_void_p.from_address(address).value or 0
        end = ctypes.c_void_p.from_address(address + ctypes.sizeof(ctypes.c_void_p)).value or 0
        size = vector.size()
        if end - begin != size or (size and not begin):
            self.fast = False
            return bytes(vector)
        data = ctypes.string_at(begin, size)
        if self.fast is None:
            self.fast = data == bytes(vector)
            if not self.fast:
                return bytes(vector)
        return data


class ModemBridge(pj.AudioMediaPort):  # type: ignore[misc]
    """One modem's audio in pjsua2's conference bridge (whose frames last ptime_ms)."""

    def __init__(self, name: str, measure: bool = False, ptime_ms: int = 20) -> None:
        super().__init__()
        self.pj_bytes = ptime_ms * BYTES_PER_MS
        down, up = targets(ptime_ms)
        self.down = DriftBuffer(self.pj_bytes, measure=measure, target_bytes=down)  # modem → phone
        self.up = DriftBuffer(FRAME_BYTES, measure=measure, target_bytes=up)  # phone → modem
        self.createPort(name, audio_format(ptime_ms=ptime_ms))
        self.connected: Any = None
        self._read = _VectorReader()

    # pjsua2's clock thread -------------------------------------------------------------

    def onFrameRequested(self, frame: Any) -> None:  # noqa: N802 - pjsua2 callback name
        """pjsua2 wants 20 ms for the phone: the next frame the modem sent."""
        data = self.down.pull()
        frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
        frame.buf = pj.ByteVector(data)
        frame.size = len(data)

    def onFrameReceived(self, frame: Any) -> None:  # noqa: N802
        """20 ms from the phone, kept for the modem's next frame."""
        data = self._read(frame.buf)
        if len(data) == self.pj_bytes:
            self.up.push(data)

    # the asyncio loop (the modem's clock) ----------------------------------------------

    def on_modem_frame(self, frame: bytes) -> bytes:
        """A frame from the modem; returns the frame to write back to it."""
        self.down.push(frame)
        return self.up.pull()

    def reset(self) -> None:
        """Fresh buffers for a new call."""
        self.down.reset()
        self.up.reset()

    def connect(self, media: Any) -> None:
        """Exchange audio with a call's audio media."""
        self.disconnect()
        media.startTransmit(self)
        self.startTransmit(media)
        self.connected = media

    def disconnect(self) -> None:
        """Stop exchanging audio with the call (it may already be gone)."""
        media, self.connected = self.connected, None
        if media is None:
            return
        # Either side may already be gone with its call.
        with contextlib.suppress(pj.Error):
            media.stopTransmit(self)
        with contextlib.suppress(pj.Error):
            self.stopTransmit(media)
