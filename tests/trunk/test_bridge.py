"""The audio bridge's pure parts: reading pjsua2 byte vectors fast, and the buffer targets."""

from __future__ import annotations

import pjsua2 as pj

from gateway.trunk.bridge import FRAME_BYTES, _VectorReader, targets


def test_vector_reader_copies_exactly_and_takes_the_fast_path() -> None:
    read = _VectorReader()
    for data in (bytes(range(256)) + bytes(64), b"", b"\x10\x00" * 80):
        frame = pj.MediaFrame()
        frame.buf = pj.ByteVector(data)
        assert read(frame.buf) == data
    assert read.fast is True


def test_targets_leave_room_for_one_slip_each_way() -> None:
    down, up = targets(20)
    assert down == up == 2 * FRAME_BYTES + 64  # ~44 ms at 20 ms frames
    down, up = targets(10)
    assert down == up == FRAME_BYTES + 160 + 64  # ~34 ms at 10 ms frames
