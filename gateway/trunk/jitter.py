"""The small ring buffer between two audio clocks (modem and pjsua2), with drift compensation.

The modem is the master clock; pjsua2's null device ticks on its own. Their rates differ by up to
a few hundred ppm and both jitter. The buffer holds about `target` frames: when its average fill
creeps above the target it drops one sample, below it repeats one — 0.8 samples a second at
100 ppm and 8 kHz, inaudible — so it neither runs dry nor grows. Any sample rate: it counts bytes
of S16LE. Thread-safe: one side is pjsua2's clock thread, the other the asyncio loop.

pull() runs on pjsua2's clock thread every 10 or 20 ms, each time with cold caches; its usual path
is kept to a few Python operations (the bench's CPU per call is mostly such callbacks).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class BufferStats:
    """What the buffer went through (for status, the bench and tests)."""

    frames_in: int = 0
    frames_out: int = 0
    underruns: int = 0  # a pull found less than a frame (after priming)
    overruns: int = 0  # a push found the buffer full and dropped the oldest audio
    dropped_samples: int = 0  # drift compensation
    inserted_samples: int = 0
    latency_ms: list[float] | None = None  # per pulled frame, when measuring


class DriftBuffer:
    """S16LE mono frames in on one clock, out on another."""

    def __init__(
        self,
        frame_bytes: int = 320,
        target_frames: float = 2.25,
        max_frames: int = 6,
        measure: bool = False,
        clock: Callable[[], float] = time.monotonic,
        target_bytes: int | None = None,
    ) -> None:
        # frame_bytes: what one pull takes. The target is the fill seen at pull time.
        self.frame = frame_bytes
        self.target = target_bytes if target_bytes is not None else int(target_frames * frame_bytes)
        self.target -= self.target % 2
        self.capacity = max(max_frames * frame_bytes, 2 * self.target)
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._primed = False
        self._avg = float(self.target)
        self._band = max(2, self.frame // 8)
        self._silence = bytes(self.frame)
        self._clock = clock
        # (byte position in the stream, arrival time) of each pushed frame, for latency figures
        self._arrivals: deque[tuple[int, float]] | None = deque() if measure else None
        self._in_pos = 0
        self._out_pos = 0
        self.stats = BufferStats(latency_ms=[] if measure else None)

    @property
    def fill(self) -> int:
        """Bytes buffered now."""
        return len(self._buf)

    def push(self, frame: bytes) -> None:
        """One frame arrives from the producer's clock."""
        with self._lock:
            self.stats.frames_in += 1
            if self._arrivals is not None:
                self._arrivals.append((self._in_pos, self._clock()))
                self._in_pos += len(frame)
            buf = self._buf
            buf += frame
            if len(buf) > self.capacity:
                # Something stalled the consumer: keep the newest audio, back to the target.
                cut = len(buf) - self.target
                cut -= cut % 2
                del buf[:cut]
                self._out_pos += cut
                self.stats.overruns += 1

    def pull(self) -> bytes:
        """One frame for the consumer's clock: silence while priming or on underrun."""
        size = self.frame
        with self._lock:
            self.stats.frames_out += 1
            fill = len(self._buf)
            if not self._primed:
                if fill < self.target:
                    return self._silence
                self._primed = True
                excess = fill - self.target
                excess -= excess % 2
                if excess > 0:  # frames that piled up while priming would only add latency
                    self._take(excess)
                    fill -= excess
            avg = self._avg = self._avg + (fill - self._avg) * 0.02
            # A narrow band: the fill seen at pull time already swings by up to a frame as the
            # two clocks' phases slide past each other; the average must stay near the target.
            error = avg - self.target
            band = self._band
            if error > band:
                # One sample per pull for drift; more (up to 8) when a clock slip moved the fill a frame.
                n = min(8, int(error / band))
                if fill >= size + 2 * n:
                    self.stats.dropped_samples += n
                    self._avg -= 2 * n
                    return _drop_samples(self._take(size + 2 * n), n)  # catch up with a fast producer
            elif error < -band:
                n = min(8, int(-error / band))
                if fill >= size - 2 * n >= 2:
                    self.stats.inserted_samples += n
                    self._avg += 2 * n
                    return _repeat_samples(self._take(size - 2 * n), n)  # wait for a slow producer
            if fill < size:
                self.stats.underruns += 1
                out = self._take(fill - fill % 2)
                return out + bytes(size - len(out))
            return self._take(size)

    def _take(self, count: int) -> bytes:
        buf = self._buf
        out = bytes(buf[:count])
        del buf[:count]  # from the front of a bytearray: CPython only moves its start
        if self._arrivals is not None:
            self._measure()
            self._out_pos += count
        return out

    def _measure(self) -> None:
        latency = self.stats.latency_ms
        assert latency is not None
        now = self._clock()
        arrivals, out_pos = self._arrivals, self._out_pos
        assert arrivals is not None
        while len(arrivals) > 1 and arrivals[1][0] <= out_pos:
            arrivals.popleft()
        if arrivals and arrivals[0][0] <= out_pos:
            # The first sample out arrived with its frame, (out_pos - pos) bytes into it.
            latency.append((now - arrivals[0][1]) * 1000)

    def reset(self) -> None:
        """Empty the buffer for a new call."""
        with self._lock:
            self._buf.clear()
            self._primed = False
            self._avg = float(self.target)
            if self._arrivals is not None:
                self._arrivals.clear()
            self._in_pos = self._out_pos = 0


def _drop_samples(pcm: bytes, n: int) -> bytes:
    """Remove n samples spread evenly over the frame (S16LE)."""
    step = 2 * (len(pcm) // 2 // (n + 1))  # bytes between the samples that go
    parts, start = [], 0
    for k in range(1, n + 1):
        cut = step * k
        parts.append(pcm[start:cut])
        start = cut + 2
    parts.append(pcm[start : len(pcm) - len(pcm) % 2])
    return b"".join(parts)


def _repeat_samples(pcm: bytes, n: int) -> bytes:
    """Repeat n samples spread evenly over the frame (S16LE)."""
    samples = len(pcm) // 2
    step = max(1, samples // (n + 1))
    parts, start = [], 0
    for k in range(1, n + 1):
        i = step * k
        if i >= samples:
            break
        end = 2 * i + 2
        parts.append(pcm[start:end])
        parts.append(pcm[2 * i : end])  # the sample once more
        start = end
    parts.append(pcm[start : 2 * samples])
    out = b"".join(parts)
    short = len(pcm) + 2 * n - len(out)
    if short > 0 and out:  # a very short frame: pad by repeating the last sample
        out += out[-2:] * (short // 2)
    return out
