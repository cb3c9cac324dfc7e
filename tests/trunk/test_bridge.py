"""The audio bridge: fast pjsua2 byte-vector copies, buffer targets per rate, and a 16 kHz bridge in pjsua2."""

from __future__ import annotations

import time
from typing import Any

import pjsua2 as pj

from gateway.lab.phones import SipEndpoint
from gateway.trunk import tones
from gateway.trunk.bridge import ModemBridge, _VectorReader, _VectorWriter, audio_format, targets


def test_vector_reader_copies_exactly_and_takes_the_fast_path() -> None:
    read = _VectorReader()
    frame = pj.MediaFrame()
    assert read(frame.buf) == b"" and read.fast is None  # an empty vector proves nothing about the layout
    for data in (bytes(range(256)) + bytes(64), b"", b"\x10\x00" * 80):
        frame = pj.MediaFrame()
        frame.buf = pj.ByteVector(data)
        assert read(frame.buf) == data
    assert read.fast is True


def test_vector_writer_fills_the_frame_and_takes_the_fast_path() -> None:
    write = _VectorWriter(640)
    assert write.fast is True
    for fill in (b"\x01\x02", b"\xff\x10"):
        frame = pj.MediaFrame()
        write(frame, fill * 320)
        assert bytes(frame.buf) == fill * 320
    frame = pj.MediaFrame()
    write(frame, b"\x03\x04" * 10)  # not the frame size: the slow path, still exact
    assert bytes(frame.buf) == b"\x03\x04" * 10 and frame.size == 20


def test_targets_leave_room_for_one_slip_each_way_at_either_rate() -> None:
    assert targets(20) == (2 * 320 + 64, 2 * 320 + 64)  # ~44 ms at 20 ms frames, 8 kHz
    assert targets(10) == (320 + 160 + 64, 320 + 160 + 64)  # ~34 ms at 10 ms frames
    assert targets(20, 16000) == (2 * 640 + 128, 2 * 640 + 128)  # the same times at 16 kHz
    assert targets(10, 16000) == (640 + 320 + 128, 640 + 320 + 128)


class Ear(pj.AudioMediaPort):  # type: ignore[misc]
    """Stands in for the phone's side of the call: keeps what the conference bridge sends it."""

    def __init__(self, clock_rate: int) -> None:
        super().__init__()
        self.heard = bytearray()
        self._read = _VectorReader()
        self.createPort("ear", audio_format(clock_rate, 20))

    def onFrameRequested(self, frame: Any) -> None:  # noqa: N802
        frame.type = pj.PJMEDIA_FRAME_TYPE_NONE

    def onFrameReceived(self, frame: Any) -> None:  # noqa: N802
        self.heard += self._read(frame.buf)


def test_a_16_khz_bridge_carries_audio_both_ways_through_an_8_khz_conference(sip_endpoint: SipEndpoint) -> None:
    # The session endpoint's conference runs at 8 kHz: pjsua2 resamples the 16 kHz modem port.
    bridge = ModemBridge("wideband", ptime_ms=20, clock_rate=16000)
    ear = Ear(8000)
    phone = pj.ToneGenerator()
    phone.createToneGenerator(8000, 1)
    desc = pj.ToneDesc()
    desc.freq1, desc.freq2, desc.on_msec, desc.off_msec = 2000, 0, 1000, 0
    descs = pj.ToneDescVector()
    descs.append(desc)
    phone.play(descs, True)
    far_end = tones.Tone((1000.0,), rate=16000)
    to_modem = bytearray()
    try:
        phone.startTransmit(bridge)
        bridge.startTransmit(ear)
        # The test plays the modem: a 640-byte frame every 20 ms, each answered with one frame.
        deadline = time.monotonic() + 20
        due = time.monotonic()
        while len(ear.heard) < 2 * 16000 or len(to_modem) < 2 * 32000:  # two seconds each way
            assert time.monotonic() < deadline, (len(ear.heard), len(to_modem), bridge.down.stats)
            sip_endpoint.pump(5)
            if time.monotonic() >= due:
                back = bridge.on_modem_frame(far_end.read(320))
                assert len(back) == 640
                to_modem += back
                due += 0.020
        assert tones.dominant(bytes(ear.heard[-8000:]), (1000.0, 2000.0), rate=8000) == 1000.0
        assert tones.dominant(bytes(to_modem[-16000:]), (1000.0, 2000.0), rate=16000) == 2000.0
    finally:
        phone.stopTransmit(bridge)
        bridge.stopTransmit(ear)
        sip_endpoint.pump(50)
