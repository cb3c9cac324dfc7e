"""The call's audio: PCM frames from the modem's audio port (or its DLE voice stream) and back."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from gateway.trunk import dle
from gateway.trunk.align import FrameAligner
from gateway.trunk.at_channel import AtChannel
from gateway.trunk.call import CallState, CallTracker
from gateway.trunk.link import ModemStatus, Timeouts
from gateway.trunk.profiles import AudioStart, Profile
from gateway.trunk.serialport import SerialPort

FrameSink = Callable[[bytes], None]

_EARLY_STATES = (CallState.DIALING, CallState.ALERTING)
_V253_FRAME = 320  # 20 ms of 8 kHz S16LE


class AudioStream:
    """Cuts the modem's audio into 20 ms frames for frame_sink, and writes the far end's frames back."""

    def __init__(
        self,
        profile: Profile,
        timeouts: Timeouts,
        status: ModemStatus,
        tracker: CallTracker,
        channel: AtChannel,
        log: Any,
        on_dtmf: Callable[[str], None],
        on_busy: Callable[[], None],
    ) -> None:
        self.profile = profile
        self.timeouts = timeouts
        self.status = status
        self.tracker = tracker
        self.channel = channel  # a V.253 modem streams its audio on the AT port
        self.log = log
        self._on_dtmf = on_dtmf
        self._on_busy = on_busy
        self.port: SerialPort | None = None
        self.frame_sink: FrameSink | None = None
        self.streaming = False
        self.last_frame_at = 0.0
        self._buf = bytearray()  # V.253: decoded stream samples not yet a whole frame
        self._pos = 0  # bytes read from the audio port since it opened (sample alignment)
        self._aligner = FrameAligner(profile.frame_bytes)
        self._uplink_tail = b""  # the part of a frame the audio port did not take yet
        self._chunk_bytes = 0  # the size of the read being cut into frames (a stall vs. a late read)
        self._decoder = dle.DleDecoder()

    def reopened(self) -> None:
        """The ports were opened afresh: a new port starts on a sample, with nothing left over."""
        self._buf.clear()
        self._aligner = FrameAligner(self.profile.frame_bytes)
        self._uplink_tail = b""
        self._pos = 0

    def close(self) -> None:
        """Close the audio port."""
        if self.port is not None:
            self.port.close()
        self.port = None

    def start_stream(self) -> None:
        """The modem answered CONNECT to its stream command: its voice stream follows on the AT port."""
        self._decoder = dle.DleDecoder()
        self.streaming = True

    def call_ended(self) -> None:
        """Forget the call's partial frames: left over, they would misalign the next call's frames."""
        self._buf.clear()
        self._aligner.reset()
        self._uplink_tail = b""

    def on_audio_data(self, data: bytes) -> None:
        """Bytes read from the audio port (raw PCM)."""
        start = self._pos
        self._pos += len(data)
        self._chunk_bytes = len(data)
        state = self.tracker.state
        if state is not CallState.ACTIVE and not (
            # Before the answer only where the PCM already carries the outgoing call's downlink:
            # the network's ringback and announcements, which the caller hears as early media.
            self.profile.early_audio and self.tracker.outgoing and state in _EARLY_STATES
        ):
            return
        aligner = self._aligner
        before = aligner.stats.realignments
        for frame in aligner.feed(data, start):
            self._frame(frame)
        if aligner.stats.realignments != before:
            # Bytes were lost on the way (a USB overrun, a stalled reader): the audio said so.
            self.status.realignments += aligner.stats.realignments - before
            self.log.warning("PCM realigned after lost bytes", realignments=self.status.realignments)

    def on_stream(self, data: bytes) -> None:
        """Bytes of a V.253 voice stream (DLE-escaped 8-bit samples and events) read from the AT port."""
        self._chunk_bytes = 2 * len(data)  # 8-bit samples on the wire, 16-bit frames out
        for item in self._decoder.feed(data):
            if isinstance(item, bytes):
                self._buf += dle.u8_to_s16le(item)
                while len(self._buf) >= _V253_FRAME:
                    frame = bytes(self._buf[:_V253_FRAME])
                    del self._buf[:_V253_FRAME]
                    self._frame(frame)
            elif isinstance(item, dle.Dtmf):
                self._on_dtmf(item.digit)
            elif item is dle.DleEvent.BUSY:
                self._on_busy()
            elif item is dle.DleEvent.END_OF_STREAM:
                self.streaming = False

    def _frame(self, frame: bytes) -> None:
        now = time.monotonic()
        gap = now - self.last_frame_at
        if self.last_frame_at and gap > self.timeouts.frame_gap:
            if self._chunk_bytes < 3 * len(frame):
                self.status.stalls += 1
                self.log.warning("PCM stream stalled", gap_ms=round(gap * 1000))
            else:
                # The audio waited in the tty and came in one read: this host was busy, not the modem.
                self.log.info("PCM read late", gap_ms=round(gap * 1000), backlog_bytes=self._chunk_bytes)
        self.last_frame_at = now
        if self.frame_sink is not None:
            self.frame_sink(frame)

    def write_frame(self, frame: bytes) -> None:
        """Send one 20 ms S16LE frame (at profile.sample_rate) to the modem (dropped if the port cannot take it now)."""
        if self.profile.audio_start is AudioStart.STREAM:
            at_port = self.channel.port
            if self.streaming and at_port is not None:
                at_port.write_some(dle.encode(dle.s16le_to_u8(frame)))
            return
        port = self.port
        if port is None:
            return
        # A tty that takes only part of a frame must get the rest before anything else: a frame
        # cut short would leave the modem one byte off for the rest of the call (loud noise).
        # Whole frames are what gets dropped when the port is full.
        if self._uplink_tail:
            self._uplink_tail = self._uplink_tail[port.write_some(self._uplink_tail) :]
            if self._uplink_tail:
                return
        written = port.write_some(frame)
        if 0 < written < len(frame):
            self._uplink_tail = frame[written:]
