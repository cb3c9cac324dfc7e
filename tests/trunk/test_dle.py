"""V.253 DLE shielding: data bytes, events, DTMF and stream ends, across read boundaries."""

from __future__ import annotations

import pytest

from gateway.trunk import dle
from gateway.trunk.dle import DleEvent, Dtmf


def test_doubled_dle_is_a_data_byte_and_events_split_the_samples() -> None:
    stream = b"\x80\x10\x10\x81\x10b\x82\x105\x10#\x83\x10\x03"
    assert dle.decode(stream) == [
        b"\x80\x10\x81",
        DleEvent.BUSY,
        b"\x82",
        Dtmf("5"),
        Dtmf("#"),
        b"\x83",
        DleEvent.END_OF_STREAM,
    ]


@pytest.mark.parametrize("code", ["b", "d", "s", "q", "u", "o", "R", "h", "H"])
def test_every_event_the_notes_name(code: str) -> None:
    assert dle.decode(b"\x10" + code.encode()) == [DleEvent(code)]


def test_a_dle_at_the_end_of_a_read_pairs_with_the_next_read() -> None:
    stream = b"\x7f\x10\x10\x7f\x10d\x7f\x10\x10\x109\x10\x03"
    for size in range(1, len(stream) + 1):
        decoder = dle.DleDecoder()
        items = [item for i in range(0, len(stream), size) for item in decoder.feed(stream[i : i + size])]
        samples = b"".join(item for item in items if isinstance(item, bytes))
        events = [item for item in items if not isinstance(item, bytes)]
        assert samples == b"\x7f\x10\x7f\x7f\x10", size
        assert events == [DleEvent.DIAL_TONE, Dtmf("9"), DleEvent.END_OF_STREAM], size
        assert decoder.ended


def test_unknown_codes_are_reported_not_swallowed() -> None:
    assert dle.decode(b"\x10z") == [dle.Unknown(ord("z"))]


def test_lone_dle_at_the_end_of_a_complete_stream() -> None:
    with pytest.raises(ValueError, match=r"lone DLE \(0x10\)"):
        dle.decode(b"\x80\x10")


def test_encode_round_trips_every_byte_value() -> None:
    data = bytes(range(256)) * 3
    shielded = dle.encode(data)
    assert shielded.count(b"\x10") == 6
    assert dle.decode(shielded) == [data]
    assert dle.encode_event(Dtmf("7")) == b"\x107"
    assert dle.encode_event(DleEvent.END_OF_STREAM) == dle.HOST_END_TX


def test_sample_format_conversion() -> None:
    assert dle.u8_to_s16le(b"\x80\xff\x00") == b"\x00\x00\x00\x7f\x00\x80"
    assert dle.s16le_to_u8(dle.u8_to_s16le(bytes(range(256)))) == bytes(range(256))
    with pytest.raises(ValueError, match="even number of bytes"):
        dle.s16le_to_u8(b"\x00")
