"""The audio bridge between a modem's PCM and a pjsua2 call: an AudioMediaPort and two drift buffers.

The modem is the master clock: each frame it sends is pushed towards the phone, and answered at
once with one frame from the phone (silence when there is none) — read one, write one. pjsua2's
conference bridge pulls and pushes on its own (null device) clock from its own thread; the
DriftBuffers between the two absorb jitter and drift. Callbacks only copy bytes (pjproject #3125).

The port runs at the modem's rate (8 kHz, or 16 kHz on a wideband SIM7600); pjsua2's conference
bridge resamples a port whose rate differs from its own.
"""

from __future__ import annotations

import ctypes
from typing import Any

import pjsua2 as pj

from gateway.pjsafe import SafeCall
from gateway.trunk.jitter import DriftBuffer

MODEM_PTIME_MS = 20  # the modem's frame
JITTER_MS = 4  # what the fill may lack at the worst moment without an underrun
_AUDIO = pj.PJMEDIA_FRAME_TYPE_AUDIO
_POINTER = ctypes.c_size_t


def bytes_per_ms(clock_rate: int) -> int:
    """S16LE mono bytes per millisecond at clock_rate (16 at 8 kHz, 32 at 16 kHz)."""
    return clock_rate * 2 // 1000


def audio_format(clock_rate: int = 8000, ptime_ms: int = 20) -> Any:
    """pjsua2's description of 16-bit mono frames of ptime_ms at clock_rate."""
    fmt = pj.MediaFormatAudio()
    fmt.type = pj.PJMEDIA_TYPE_AUDIO
    fmt.clockRate = clock_rate
    fmt.channelCount = 1
    fmt.bitsPerSample = 16
    fmt.frameTimeUsec = ptime_ms * 1000
    return fmt


def targets(ptime_ms: int, clock_rate: int = 8000) -> tuple[int, int]:
    """Fill targets (bytes, seen at pull time) for modem → phone and phone → modem.

    Between two pulls the other clock may deliver one chunk fewer than usual when their phases
    cross (a slip), so each buffer holds one pull plus one push beyond the pull, plus a margin.
    """
    per_ms = bytes_per_ms(clock_rate)
    pj_bytes, modem_bytes, margin = ptime_ms * per_ms, MODEM_PTIME_MS * per_ms, JITTER_MS * per_ms
    down = pj_bytes + modem_bytes + margin  # pulled by pjsua2 in pj_bytes, pushed in modem frames
    up = modem_bytes + pj_bytes + margin  # pulled by the modem in frames, pushed by pjsua2
    return down, up


def _begin_end(vector: Any) -> tuple[int, int]:
    # A std::vector<unsigned char> is three pointers (begin, end, capacity end) in the Itanium C++
    # ABI that Linux uses; `vector.this` is its address.
    address = int(vector.this)
    return _POINTER.from_address(address).value, _POINTER.from_address(address + ctypes.sizeof(_POINTER)).value


class _VectorReader:
    """Copies a pjsua2 ByteVector into bytes without iterating it in Python.

    `bytes(frame.buf)` walks the SWIG vector one element at a time: 260 µs per 20 ms frame, over a
    percent of a core per call for nothing. The vector's storage is copied in one go instead (see
    `_begin_end`), through a ctypes array rather than a ctypes function: calling a C function
    through ctypes (memmove) lets go of the GIL, and the asyncio loop grabbing it then stalls
    pjsua2's clock thread. The layout is checked against the slow path on first use; if it ever
    differs, the slow path stays.
    """

    def __init__(self) -> None:
        self.fast: bool | None = None  # unknown until the first frame
        self._arrays: dict[int, Any] = {}  # ctypes char array type per size (one, in practice)

    def __call__(self, vector: Any) -> bytes:
        """The vector's bytes."""
        if self.fast:
            begin, end = _begin_end(vector)
            if not begin:
                return b""
            size = end - begin
            array = self._arrays.get(size) or self._arrays.setdefault(size, ctypes.c_char * size)
            raw: bytes = array.from_address(begin).raw
            return raw
        if self.fast is False:
            return bytes(vector)
        size = vector.size()
        if not size:
            return b""  # nothing to check the layout against yet
        begin, end = _begin_end(vector)
        data = ctypes.string_at(begin, size) if begin and end - begin == size else None
        self.fast = data is not None and data == bytes(vector)
        return data if data is not None and self.fast else bytes(vector)


class _VectorWriter:
    """Gives pjsua2 a frame's bytes without building a ByteVector from a Python sequence each time.

    `pj.ByteVector(data)` converts the bytes one element at a time. Instead one ByteVector of the
    frame's size is kept, its storage overwritten through a ctypes array laid over it (no GIL
    release, see `_VectorReader`), and assigned to the frame (a C++ copy). Checked once against
    the slow path.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.vector = pj.ByteVector(bytes(size))
        begin, end = _begin_end(self.vector)
        self.fast = bool(begin) and end - begin == size
        self._storage: Any = None
        if self.fast:
            self._storage = (ctypes.c_char * size).from_address(begin)  # valid while self.vector lives
            probe = bytes(i % 251 for i in range(size))
            self._storage.raw = probe
            self.fast = bytes(self.vector) == probe

    def __call__(self, frame: Any, data: bytes) -> None:
        """Put data (size bytes) into frame.buf."""
        if self.fast and len(data) == self.size:
            self._storage.raw = data
            frame.buf = self.vector
        else:
            frame.buf = pj.ByteVector(data)
            frame.size = len(data)


class ModemBridge(pj.AudioMediaPort):  # type: ignore[misc]
    """One modem's audio in pjsua2's conference bridge (whose frames last ptime_ms)."""

    def __init__(self, name: str, measure: bool = False, ptime_ms: int = 20, clock_rate: int = 8000) -> None:
        super().__init__()
        self.clock_rate = clock_rate
        self.pj_bytes = ptime_ms * bytes_per_ms(clock_rate)
        self.modem_bytes = MODEM_PTIME_MS * bytes_per_ms(clock_rate)
        down, up = targets(ptime_ms, clock_rate)
        self.down = DriftBuffer(self.pj_bytes, measure=measure, target_bytes=down)  # modem → phone
        self.up = DriftBuffer(self.modem_bytes, measure=measure, target_bytes=up)  # phone → modem
        self.createPort(name, audio_format(clock_rate, ptime_ms))
        self.connected: SafeCall | None = None
        self._read = _VectorReader()
        self._write = _VectorWriter(self.pj_bytes)

    # pjsua2's clock thread: kept lean, they run every ptime_ms ---------------------------

    def onFrameRequested(self, frame: Any) -> None:  # noqa: N802 - pjsua2 callback name
        """pjsua2 wants ptime_ms for the phone: the next audio the modem sent."""
        frame.type = _AUDIO
        # pjsua2 presets frame.size to the bytes the bridge wants (pj_bytes): pull() gives exactly that.
        self._write(frame, self.down.pull())

    def onFrameReceived(self, frame: Any) -> None:  # noqa: N802
        """ptime_ms from the phone, kept for the modem's next frame."""
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

    def connect(self, call: SafeCall) -> None:
        """Exchange audio with a call's active audio (UserAgentError if it has none, or is gone)."""
        self.disconnect()
        call.link(self)  # the call owns the conference links: it knows when its stream is gone
        self.connected = call

    def disconnect(self) -> None:
        """Stop exchanging audio with the call (a no-op once it is gone: pjsua2 dropped the links with it)."""
        call, self.connected = self.connected, None
        if call is not None:
            call.unlink(self)
