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
    ) -> None:
        self.frame = frame_bytes
        self.target = int(target_frames * frame_bytes)
        self.capacity = max_frames * frame_bytes
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
            self._avg += (len(self._buf) - self._avg) * 0.02
            # A narrow band: the fill seen at pull time already swings by up to a frame as the
            # two clocks' phases slide past each other; the average must stay near the target.
            band = self.frame // 8
            if self._avg > self.target + band and len(self._buf) >= size + 2:
                out = self._take(size + 2)
                mid = size // 2 - size // 2 % 2
                out = out[:mid] + out[mid + 2 :]  # one sample fewer: catch up with a fast producer
                self.stats.dropped_samples += 1
                self._avg -= 2
                return out
            if self._avg < self.target - band and len(self._buf) >= size - 2 >= 2:
                out = self._take(size - 2)
                mid = len(out) // 2 - len(out) // 2 % 2
                out = out[:mid] + out[mid - 2 : mid] + out[mid:]  # one sample repeated: wait for a slow one
                self.stats.inserted_samples += 1
                self._avg += 2
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
