"""The audio bridge between a modem's PCM and a pjsua2 call: an AudioMediaPort and two drift buffers.

The modem is the master clock: each frame it sends is pushed towards the phone, and answered at
once with one frame from the phone (silence when there is none) — read one, write one. pjsua2's
conference bridge pulls and pushes on its own (null device) clock from its own thread; the
DriftBuffers between the two absorb jitter and drift. Callbacks only copy bytes (pjproject #3125).
"""

from __future__ import annotations

import contextlib
from typing import Any

import pjsua2 as pj

from gateway.trunk.jitter import DriftBuffer

FRAME_BYTES = 320  # 20 ms of 8 kHz S16LE mono


def audio_format(clock_rate: int = 8000) -> Any:
    """pjsua2's description of 16-bit mono 20 ms frames at clock_rate."""
    fmt = pj.MediaFormatAudio()
    fmt.type = pj.PJMEDIA_TYPE_AUDIO
    fmt.clockRate = clock_rate
    fmt.channelCount = 1
    fmt.bitsPerSample = 16
    fmt.frameTimeUsec = 20000
    return fmt


class ModemBridge(pj.AudioMediaPort):  # type: ignore[misc]
    """One modem's audio in pjsua2's conference bridge."""

    def __init__(self, name: str, measure: bool = False) -> None:
        super().__init__()
        self.down = DriftBuffer(FRAME_BYTES, measure=measure)  # modem → phone
        self.up = DriftBuffer(FRAME_BYTES, measure=measure)  # phone → modem
        self.createPort(name, audio_format())
        self.connected: Any = None

    # pjsua2's clock thread -------------------------------------------------------------

    def onFrameRequested(self, frame: Any) -> None:  # noqa: N802 - pjsua2 callback name
        """pjsua2 wants 20 ms for the phone: the next frame the modem sent."""
        data = self.down.pull()
        frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
        frame.buf = pj.ByteVector(data)
        frame.size = len(data)

    def onFrameReceived(self, frame: Any) -> None:  # noqa: N802
        """20 ms from the phone, kept for the modem's next frame."""
        data = bytes(frame.buf)
        if len(data) == FRAME_BYTES:
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
