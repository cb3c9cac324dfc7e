"""The drift-compensating ring buffer between the modem's clock and pjsua2's."""

from __future__ import annotations

import random

from gateway.trunk import jitter, tones
from gateway.trunk.jitter import DriftBuffer


def run(
    ppm: float,
    seconds: float,
    jitter_frames: float = 0,
    rate: int = 8000,
    target_bytes: int | None = None,
    seed: int = 7,
) -> DriftBuffer:
    """Producer at 50 Hz × (1 + ppm), consumer at exactly 50 Hz, on a simulated clock."""
    now = [0.0]
    frame = rate // 50 * 2
    buf = DriftBuffer(frame, measure=True, clock=lambda: now[0], target_bytes=target_bytes)
    tone = tones.Tone((1000.0,), rate=rate)
    rng = random.Random(seed)
    period_in = 0.02 / (1 + ppm * 1e-6)
    next_in, next_out = 0.0, 0.005
    out = bytearray()
    while next_out < seconds:
        if next_in + rng.uniform(0, jitter_frames * 0.02) <= next_out:
            now[0] = next_in
            buf.push(tone.read(frame // 2))
            next_in += period_in
        else:
            now[0] = next_out
            out += buf.pull()
            next_out += 0.02
    buf.out = bytes(out)  # type: ignore[attr-defined]
    return buf


def test_fast_and_slow_producers_neither_underrun_nor_grow() -> None:
    for ppm in (+300.0, -300.0):
        buf = run(ppm, seconds=120)
        stats = buf.stats
        assert stats.underruns == 0 and stats.overruns == 0, (ppm, stats)
        assert buf.fill <= 4 * 320
        # 300 ppm of 8000 samples/s for 120 s is 288 samples to absorb, one at a time.
        moved = stats.dropped_samples if ppm > 0 else stats.inserted_samples
        assert 200 < moved < 500, (ppm, moved)
        assert stats.latency_ms is not None and max(stats.latency_ms[50:]) < 80


def test_the_audio_survives_the_compensation() -> None:
    buf = run(+300.0, seconds=10)
    assert tones.dominant(buf.out[-8000:], (1000.0, 2000.0)) == 1000.0  # type: ignore[attr-defined]


def test_priming_silence_then_underrun_and_overrun_are_counted() -> None:
    buf = DriftBuffer(target_frames=2, max_frames=4)
    assert buf.pull() == bytes(320) and buf.stats.underruns == 0  # priming is not an underrun
    for _ in range(2):
        buf.push(b"\x01\x00" * 160)
    assert buf.pull() == b"\x01\x00" * 160
    buf.pull()
    buf.pull()
    assert buf.stats.underruns == 1
    for _ in range(6):
        buf.push(b"\x02\x00" * 160)
    assert buf.stats.overruns >= 1 and buf.fill <= 4 * 320


def _drop_reference(pcm: bytes, n: int) -> bytes:
    """The plain per-sample definition the sliced version must match."""
    samples = len(pcm) // 2
    step = samples // (n + 1)
    cut = {step * (k + 1) for k in range(n)}
    return b"".join(pcm[2 * i : 2 * i + 2] for i in range(samples) if i not in cut)


def _repeat_reference(pcm: bytes, n: int) -> bytes:
    samples = len(pcm) // 2
    step = max(1, samples // (n + 1))
    dup = {step * (k + 1) for k in range(n)}
    out = bytearray()
    for i in range(samples):
        out += pcm[2 * i : 2 * i + 2] * (2 if i in dup else 1)
    while len(out) < len(pcm) + 2 * n:
        out += out[-2:]
    return bytes(out)


def test_drift_fixes_remove_and_repeat_exactly_the_planned_samples() -> None:
    rng = random.Random(3)
    for size in (4, 6, 160, 320, 640):
        pcm = rng.randbytes(size)
        for n in range(1, 9):
            dropped = jitter._drop_samples(pcm, n)
            assert dropped == _drop_reference(pcm, n), (size, n)
            repeated = jitter._repeat_samples(pcm, n)
            assert repeated == _repeat_reference(pcm, n) and len(repeated) == size + 2 * n, (size, n)
            if size > 2 * (n + 1):
                assert len(dropped) == size - 2 * n


def test_16_khz_frames_drift_and_jitter_without_underruns() -> None:
    # A slow modem clock (-300 ppm) with 3 ms of jitter.
    buf = run(-300.0, seconds=60, jitter_frames=0.15, rate=16000, target_bytes=2 * 640 + 128, seed=11)
    out = buf.out  # type: ignore[attr-defined]
    stats = buf.stats
    assert stats.underruns == 0 and stats.overruns == 0, stats
    # 300 ppm of 16000 samples/s for 60 s is 288 samples to insert.
    assert 200 < stats.inserted_samples < 500 and stats.dropped_samples < 50, stats
    assert tones.dominant(bytes(out[-16000:]), (1000.0, 2000.0), rate=16000) == 1000.0
