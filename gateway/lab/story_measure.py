"""Figures `lifeline lab` measures from what its phones recorded and its sink received."""

from __future__ import annotations

import statistics
import time
import wave
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.lab.story_model import StepFailedError
from gateway.trunk import tones
from gateway.trunk.tones import read_wav

if TYPE_CHECKING:  # the story imports this module
    from gateway.lab.phones import PhoneCall
    from gateway.lab.story import Teller

BLOCK_MS = 5  # the onset resolution (the bridge itself moves audio in 20 ms frames)
ECHO_HZ = 1500  # the burst the echo probe sends: none of the story's other tones
ECHO_ON_MS, ECHO_OFF_MS = 60, 440


class ArrivalLog(dict[str, dict[str, Any]]):
    """The sink's records, each with when (monotonic) it first arrived: the receiver keeps them with setdefault."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: dict[str, float] = {}

    def setdefault(self, key: str, default: Any = None) -> Any:
        """Keep the record and note when it came (only the first time)."""
        if key not in self:
            self.arrived[key] = time.monotonic()
        return super().setdefault(key, default)


def onsets(pcm: bytes, rate: int, freq: float = ECHO_HZ) -> list[float]:
    """Milliseconds into pcm where each burst of freq begins (runs of loud blocks; short dips bridged)."""
    samples = tones.from_bytes(pcm)
    n = rate * BLOCK_MS // 1000
    powers = [tones.goertzel_power(samples[i : i + n], freq, rate) for i in range(0, len(samples) - n + 1, n)]
    if not powers or max(powers) <= 0:
        return []
    loud = max(powers) * 0.05  # an echo comes back as loud as it went (G.711): far above the silence between
    found: list[float] = []
    quiet = 99
    for index, power in enumerate(powers):
        if power >= loud:
            if quiet > 2:  # more than 10 ms of quiet before: a new burst, not a dip inside one
                found.append(index * BLOCK_MS)
            quiet = 0
        else:
            quiet += 1
    return found


def echo_round_trips(starts: list[float], period_ms: float = ECHO_ON_MS + ECHO_OFF_MS) -> list[float]:
    """Round trips (ms) from the onsets of a recording holding bursts sent every period_ms and their echoes.

    Bursts sent keep the generator's exact period from the first; any other onset is an echo, of the
    burst sent last before it.
    """
    if not starts:
        return []
    first, trips = starts[0], []
    for start in starts[1:]:
        sent = first + ((start - first) // period_ms) * period_ms
        offset = start - sent
        if offset > 2 * BLOCK_MS:  # not itself a burst sent (those land on the period, within a block)
            trips.append(offset)
    return trips


def round_trip_figures(trips: list[float]) -> dict[str, Any]:
    """The JSON figures for the echo probe's round trips."""
    return {
        "audio_round_trip_ms_phone_to_echoing_phone": round(statistics.median(trips), 1),
        "audio_round_trip_samples": len(trips),
    }


def finished_wav(teller: Teller, wav: Path) -> tuple[bytes, int]:
    """(PCM, rate) of a recording once pjsua2 has completed it (it writes the header when the recorder goes)."""
    found: list[tuple[bytes, int]] = []

    def written() -> bool:
        try:
            found.append(read_wav(wav))
        except (wave.Error, EOFError, OSError):
            return False
        return True

    teller.wait(written, 5, f"the recording {wav.name} to be complete")
    return found[0]


def probe_round_trip(teller: Teller, call: PhoneCall, incoming: PhoneCall) -> dict[str, Any]:
    """The called phone echoes what it hears; the caller sends bursts and records them with their echo."""
    incoming.loop_back()
    wav = teller.wav()
    call.probe_echo(ECHO_HZ, ECHO_ON_MS, ECHO_OFF_MS, wav)
    sent = call.rtp_packets()[1]
    # 2.5 s of packets (50 a second): five bursts and their echoes.
    teller.wait(lambda: call.rtp_packets()[1] > sent + 125, 10, "the echo probe's bursts")
    call.stop_recording()
    pcm, rate = finished_wav(teller, wav)
    trips = echo_round_trips(onsets(pcm, rate))
    if len(trips) < 2:
        raise StepFailedError(f"the echo probe found {len(trips)} echoes in {len(pcm) / rate / 2:.1f} s recorded")
    return round_trip_figures(trips)
