"""Real audio for tests, the simulator and the bench: tones, DTMF, Goertzel detection (S16LE mono)."""

from __future__ import annotations

import math
import wave
from array import array
from dataclasses import dataclass, field
from pathlib import Path

DTMF_FREQS = {
    "1": (697, 1209),
    "2": (697, 1336),
    "3": (697, 1477),
    "A": (697, 1633),
    "4": (770, 1209),
    "5": (770, 1336),
    "6": (770, 1477),
    "B": (770, 1633),
    "7": (852, 1209),
    "8": (852, 1336),
    "9": (852, 1477),
    "C": (852, 1633),
    "*": (941, 1209),
    "0": (941, 1336),
    "#": (941, 1477),
    "D": (941, 1633),
}


def to_bytes(samples: array[int]) -> bytes:
    """S16LE bytes of an array('h') (the machines we run on are little-endian; checked)."""
    return samples.tobytes()


def from_bytes(pcm: bytes) -> array[int]:
    """An array('h') of S16LE bytes."""
    if len(pcm) % 2:
        raise ValueError(f"S16LE needs an even number of bytes, got {len(pcm)}")
    samples = array("h")
    samples.frombytes(pcm)
    return samples


@dataclass
class Tone:
    """A continuous sine (or two summed) that keeps its phase across calls."""

    freqs: tuple[float, ...]
    amplitude: int = 8000
    rate: int = 8000
    _n: int = field(default=0, repr=False)

    def read(self, count: int) -> bytes:
        """The next count samples as S16LE."""
        out = array("h", bytes(2 * count))
        step = [2 * math.pi * f / self.rate for f in self.freqs]
        share = self.amplitude / max(1, len(self.freqs))
        for k in range(count):
            n = self._n + k
            out[k] = int(sum(share * math.sin(w * n) for w in step))
        self._n += count
        return to_bytes(out)


class Silence:
    """A source of zero samples."""

    def read(self, count: int) -> bytes:
        """count samples of silence."""
        return bytes(2 * count)


class Cadence:
    """Tones switched on and off in a repeating pattern, like the network's ringback and information tones."""

    def __init__(self, steps: tuple[tuple[tuple[float, ...], int], ...], amplitude: int = 8000, rate: int = 8000):
        # steps: (frequencies, milliseconds) each; no frequencies is a pause.
        if not steps or any(ms <= 0 for _, ms in steps):
            raise ValueError("a cadence needs at least one step, each longer than 0 ms")
        self._steps: list[tuple[Tone | Silence, int]] = [
            (Tone(freqs, amplitude, rate) if freqs else Silence(), rate * ms // 1000) for freqs, ms in steps
        ]
        self._step = 0
        self._left = self._steps[0][1]

    def read(self, count: int) -> bytes:
        """The next count samples as S16LE."""
        parts = []
        while count > 0:
            source = self._steps[self._step][0]
            take = min(count, self._left)
            parts.append(source.read(take))
            count -= take
            self._left -= take
            if self._left == 0:
                self._step = (self._step + 1) % len(self._steps)
                self._left = self._steps[self._step][1]
        return b"".join(parts)


RINGBACK_HZ = 425.0
SIT_HZ = (950.0, 1400.0, 1800.0)


def ringback(rate: int = 8000) -> Cadence:
    """The European ringback tone (ETSI ES 201 970): 425 Hz, 1 s on, 4 s off, starting on."""
    return Cadence((((RINGBACK_HZ,), 1000), ((), 4000)), rate=rate)


def special_information(rate: int = 8000, pause_ms: int = 1500) -> Cadence:
    """The special information tone (ITU-T E.180) that opens "the number you have called is not available".

    950, 1400 and 1800 Hz for 330 ms each; the spoken announcement that follows is a pause here.
    """
    return Cadence((*(((f,), 330) for f in SIT_HZ), ((), pause_ms)), rate=rate)


def dtmf(digit: str, ms: int = 100, gap_ms: int = 60, rate: int = 8000) -> bytes:
    """One DTMF digit followed by a gap, as S16LE."""
    if digit not in DTMF_FREQS:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    tone = Tone(DTMF_FREQS[digit], amplitude=12000, rate=rate)
    return tone.read(rate * ms // 1000) + bytes(2 * (rate * gap_ms // 1000))


def goertzel_power(samples: array[int], freq: float, rate: int = 8000) -> float:
    """Relative power of one frequency in samples (normalised by length and full scale)."""
    if not samples:
        return 0.0
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s0 = x + coeff * s1 - s2
        s2, s1 = s1, s0
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    return power / (len(samples) ** 2 * 32768.0**2)


def rms(samples: array[int]) -> float:
    """Root mean square level, 0..32768."""
    if not samples:
        return 0.0
    return math.sqrt(sum(x * x for x in samples) / len(samples))


def dominant(pcm: bytes, candidates: tuple[float, ...], rate: int = 8000) -> float | None:
    """Which candidate frequency dominates pcm, or None if the audio is (near) silent."""
    samples = from_bytes(pcm)
    if rms(samples) < 100:
        return None
    powers = {f: goertzel_power(samples, f, rate) for f in candidates}
    best = max(powers, key=lambda f: powers[f])
    others = [p for f, p in powers.items() if f != best]
    # A tone that is really there stands far above the others.
    if others and powers[best] < 10 * max(others):
        return None
    return best


def tone_sequence(pcm: bytes, candidates: tuple[float, ...], rate: int = 8000, block_ms: int = 50) -> list[float]:
    """The candidate tones that dominate pcm in turn (once until another follows; silence is skipped)."""
    size = rate * block_ms // 1000 * 2
    heard: list[float] = []
    for start in range(0, len(pcm) - size + 1, size):
        found = dominant(pcm[start : start + size], candidates, rate)
        if found is not None and (not heard or heard[-1] != found):
            heard.append(found)
    return heard


def detect_dtmf(pcm: bytes, rate: int = 8000, block_ms: int = 40) -> str:
    """The DTMF digits in pcm, in order (a digit counts once per continuous burst)."""
    samples = from_bytes(pcm)
    block = rate * block_ms // 1000
    rows, cols = (697, 770, 852, 941), (1209, 1336, 1477, 1633)
    digits: list[str] = []
    last: str | None = None
    for start in range(0, len(samples) - block + 1, block):
        chunk = samples[start : start + block]
        found: str | None = None
        if rms(chunk) > 500:
            row = max(rows, key=lambda f: goertzel_power(chunk, f, rate))
            col = max(cols, key=lambda f: goertzel_power(chunk, f, rate))
            total = goertzel_power(chunk, row, rate) + goertzel_power(chunk, col, rate)
            if total > 0.01:
                found = next(d for d, pair in DTMF_FREQS.items() if pair == (row, col))
        if found is not None and found != last:
            digits.append(found)
        last = found
    return "".join(digits)


def read_wav(path: Path) -> tuple[bytes, int]:
    """(16-bit mono PCM, sample rate) of a finished recording; wave.Error while pjsua2 has not completed it."""
    with wave.open(str(path), "rb") as audio:
        if audio.getsampwidth() != 2 or audio.getnchannels() != 1:
            raise wave.Error(f"{path.name}: not 16-bit mono")
        return audio.readframes(audio.getnframes()), audio.getframerate()
