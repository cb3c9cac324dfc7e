"""The PCM aligner: lost bytes at any moment heal within a few frames; natural audio never moves it."""

from __future__ import annotations

import math
import random
from array import array
from collections.abc import Callable

import pytest

from gateway.trunk import tones
from gateway.trunk.align import FrameAligner, misaligned

FRAME = 320  # 20 ms at 8 kHz
SECONDS = 6


def pcm(gen: Callable[[int], float], seconds: float = SECONDS, rate: int = 8000) -> bytes:
    samples = array("h", (max(-32768, min(32767, int(gen(n)))) for n in range(int(seconds * rate))))
    return samples.tobytes()


def speechlike(seed: int) -> Callable[[int], float]:
    """Voiced harmonics with a wandering pitch and syllable envelope, plus breath noise."""
    rng = random.Random(seed)
    noise = [rng.gauss(0, 150) for _ in range(8000)]

    def gen(n: int) -> float:
        t = n / 8000
        pitch = 120 + 40 * math.sin(2 * math.pi * 0.7 * t)
        envelope = 0.5 + 0.5 * math.sin(2 * math.pi * 3 * t) ** 2
        voiced = sum(3000 / k * math.sin(2 * math.pi * pitch * k * t + k) for k in range(1, 25) if pitch * k < 3400)
        return envelope * voiced + noise[n % 8000]

    return gen


_RNG = random.Random(2)
NOISE = [_RNG.gauss(0, 1) for _ in range(8009)]  # a prime length: no period within a frame
NATURAL = {
    "speech-like": speechlike(1),
    "1 kHz tone": lambda n: tones.Tone((1000.0,)).amplitude * math.sin(2 * math.pi * 1000 * n / 8000),
    "2 kHz tone": lambda n: 8000 * math.sin(2 * math.pi * 2000 * n / 8000),
    "425 Hz ringback": lambda n: 4000 * math.sin(2 * math.pi * 425 * n / 8000),
    "DTMF 9": lambda n: 6000 * (math.sin(2 * math.pi * 852 * n / 8000) + math.sin(2 * math.pi * 1477 * n / 8000)),
    "loud 3 kHz": lambda n: 14000 * math.sin(2 * math.pi * 3000 * n / 8000),
    "white noise -20 dBFS": lambda n: NOISE[n % len(NOISE)] * 3300,
    "comfort noise": lambda n: NOISE[n % len(NOISE)] * 20,
    "digital silence": lambda n: 0,
}


def reads(data: bytes, rng: random.Random) -> list[bytes]:
    """data cut as a tty hands it over: mostly whole frames, sometimes any size."""
    out, pos = [], 0
    while pos < len(data):
        size = FRAME if rng.random() < 0.6 else rng.randrange(1, 3 * FRAME)
        out.append(data[pos : pos + size])
        pos += size
    return out


def run(aligner: FrameAligner, data: bytes, rng: random.Random) -> bytes:
    out, pos = [], 0
    for chunk in reads(data, rng):
        out += aligner.feed(chunk, pos)
        pos += len(chunk)
    return b"".join(out)


@pytest.mark.parametrize("name", NATURAL)
def test_natural_audio_is_never_realigned(name: str) -> None:
    aligner = FrameAligner(FRAME)
    data = pcm(NATURAL[name])
    out = run(aligner, data, random.Random(7))
    assert aligner.stats.realignments == 0 and aligner.stats.concealed == 0
    assert out == data[: len(out)] and len(data) - len(out) < FRAME


@pytest.mark.parametrize("name", ["speech-like", "1 kHz tone", "2 kHz tone", "DTMF 9", "white noise -20 dBFS"])
def test_odd_losses_at_random_moments_heal_within_three_frames(name: str) -> None:
    seed = random.randrange(1 << 30)
    print(f"seed={seed}")
    rng = random.Random(seed)
    data = pcm(NATURAL[name])
    # Lose bytes at ten random moments, at least a quarter of a second apart (two odd losses within
    # a frame or two cancel out before anything could tell, as they would on a real line).
    moments = sorted(rng.sample(range(1, 2 * SECONDS), 10))
    cuts = [(m * 8000 + rng.randrange(0, 4000), rng.choice((1, 3, 5, 7, 2, 4, 161))) for m in moments]
    damaged, kept = bytearray(), 0
    for at, lost in cuts:
        damaged += data[kept:at]
        kept = at + lost
    damaged += data[kept:]
    aligner = FrameAligner(FRAME)
    out = run(aligner, bytes(damaged), rng)
    odd = sum(lost % 2 for _, lost in cuts)
    assert aligner.stats.realignments == odd

    # Every frame out is a run of the original's samples, except at most three around each loss.
    bad = 0
    for i in range(0, len(out) - FRAME + 1, FRAME):
        frame = out[i : i + FRAME]
        where = data.find(frame)
        if where < 0 or where % 2:
            bad += 1
    assert bad <= 3 * len(cuts), f"{bad} frames of noise for {len(cuts)} losses (seed {seed})"


def test_a_read_starting_mid_sample_after_dropped_audio_is_aligned_at_once() -> None:
    data = pcm(NATURAL["speech-like"], seconds=1)
    aligner = FrameAligner(FRAME)
    # The audio before byte 1001 was read and dropped (no call yet): the stream resumes mid-sample.
    out = b"".join(aligner.feed(data[1001:], 1001))
    assert aligner.stats.position_skips == 1 and aligner.stats.realignments == 0
    assert out == data[1002 : 1002 + len(out)]


def test_one_misaligned_frame_reads_as_such_and_an_aligned_one_does_not() -> None:
    data = pcm(NATURAL["speech-like"], seconds=1)
    assert not misaligned(data[3200 : 3200 + FRAME])
    assert misaligned(data[3201 : 3201 + FRAME])
