"""The small ring buffer between two audio clocks (modem and pjsua2), with drift compensation.

The modem is the master clock; pjsua2's null device ticks on its own. Their rates differ by up to
a few hundred ppm and both jitter. The buffer holds about `target` frames: when its average fill
creeps above the target it drops one sample, below it repeats one — 0.8 samples a second at
100 ppm, inaudible — so it neither runs dry nor grows. Thread-safe: one side is pjsua2's clock
thread, the other the asyncio loop.
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
        self._clock = clock
        # (byte position in the stream, arrival time) of each pushed frame, for latency figures
        self._arrivals: deque[tuple[int, float]] = deque()
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
            if self.stats.latency_ms is not None:
                self._arrivals.append((self._in_pos, self._clock()))
            self._in_pos += len(frame)
            self._buf += frame
            if len(self._buf) > self.capacity:
                # Something stalled the consumer: keep the newest audio, back to the target.
                cut = len(self._buf) - self.target
                cut -= cut % 2
                del self._buf[:cut]
                self._out_pos += cut
                self.stats.overruns += 1

    def pull(self) -> bytes:
        """One frame for the consumer's clock: silence while priming or on underrun."""
        size = self.frame
        with self._lock:
            self.stats.frames_out += 1
            if not self._primed:
                if len(self._buf) < self.target:
                    return bytes(size)
                self._primed = True
                excess = len(self._buf) - self.target
                excess -= excess % 2
                if excess > 0:  # frames that piled up while priming would only add latency
                    self._take(excess)
            self._avg += (len(self._buf) - self._avg) * 0.02
            # A narrow band: the fill seen at pull time already swings by up to a frame as the
            # two clocks' phases slide past each other; the average must stay near the target.
            band = self.frame // 8
            error = self._avg - self.target
            # One sample per pull for drift; more (up to 8) when a clock slip moved the fill a frame.
            n = min(8, max(1, int(abs(error) / band)))
            if error > band and len(self._buf) >= size + 2 * n:
                out = self._take(size + 2 * n)
                out = _drop_samples(out, n)  # catch up with a fast producer
                self.stats.dropped_samples += n
                self._avg -= 2 * n
                return out
            if error < -band and len(self._buf) >= size - 2 * n >= 2:
                out = self._take(size - 2 * n)
                out = _repeat_samples(out, n)  # wait for a slow producer
                self.stats.inserted_samples += n
                self._avg += 2 * n
                return out
            if len(self._buf) < size:
                self.stats.underruns += 1
                out = self._take(len(self._buf) - len(self._buf) % 2)
                return out + bytes(size - len(out))
            return self._take(size)

    def _take(self, count: int) -> bytes:
        out = bytes(self._buf[:count])
        del self._buf[:count]
        if self.stats.latency_ms is not None:
            now = self._clock()
            while len(self._arrivals) > 1 and self._arrivals[1][0] <= self._out_pos:
                self._arrivals.popleft()
            if self._arrivals and self._arrivals[0][0] <= self._out_pos:
                pos, arrived = self._arrivals[0]
                # The first sample out arrived with its frame, (out_pos - pos) bytes into it.
                self.stats.latency_ms.append((now - arrived) * 1000)
                del pos
        self._out_pos += count
        return out

    def reset(self) -> None:
        """Empty the buffer for a new call."""
        with self._lock:
            self._buf.clear()
            self._primed = False
            self._avg = float(self.target)
            self._arrivals.clear()
            self._in_pos = self._out_pos = 0


def _drop_samples(pcm: bytes, n: int) -> bytes:
    """Remove n samples spread evenly over the frame (S16LE)."""
    samples = len(pcm) // 2
    step = samples // (n + 1)
    cut = {step * (k + 1) for k in range(n)}
    return b"".join(pcm[2 * i : 2 * i + 2] for i in range(samples) if i not in cut)


def _repeat_samples(pcm: bytes, n: int) -> bytes:
    """Repeat n samples spread evenly over the frame (S16LE)."""
    samples = len(pcm) // 2
    step = max(1, samples // (n + 1))
    dup = {step * (k + 1) for k in range(n)}
    out = bytearray()
    for i in range(samples):
        out += pcm[2 * i : 2 * i + 2]
        if i in dup:
            out += pcm[2 * i : 2 * i + 2]
    while len(out) < len(pcm) + 2 * n:  # a very short frame: pad by repeating the last sample
        out += out[-2:]
    return bytes(out)
