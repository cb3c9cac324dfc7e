"""The real driver's PCM against the simulator's faults: lost bytes and bursts after stalled writes."""

from __future__ import annotations

import itertools
import random
import time

import pytest

from gateway.trunk import tones
from gateway.trunk.align import misaligned
from gateway.trunk.call import CallState
from gateway.trunk.link import LinkState
from gateway.trunk.profiles import Family
from gateway.trunk.sim import FarEnd
from tests.trunk.conftest import Rig, RigFactory, eventually, wait_state


def clean(frame: bytes, rate: int = 8000) -> bool:
    return not misaligned(frame) and tones.dominant(frame, (1000.0, 2000.0, 440.0), rate=rate) == 1000.0


async def call_with_timeline(rig_factory: RigFactory, family: Family) -> tuple[Rig, list[tuple[float, bytes]]]:
    far = FarEnd(source=tones.Tone((1000.0,), rate=16000 if family is Family.SIMCOM else 8000), answer_after_s=0.2)
    rig: Rig = await rig_factory(family, far_end=far)
    await wait_state(rig, LinkState.READY)
    timeline: list[tuple[float, bytes]] = []

    def on_frame(frame: bytes) -> None:
        timeline.append((time.monotonic(), frame))
        rig.modem.write_frame(bytes(len(frame)))

    rig.modem.frame_sink = on_frame
    await rig.modem.dial("+4930123456")
    await eventually(lambda: rig.modem.tracker.state is CallState.ACTIVE, "the far end to answer")
    await eventually(lambda: len(timeline) >= 10, "the first frames")
    return rig, timeline


@pytest.mark.parametrize("family", [Family.QUECTEL, Family.HUAWEI])
async def test_each_odd_loss_mid_call_costs_at_most_three_frames(rig_factory: RigFactory, family: Family) -> None:
    seed = random.randrange(1 << 20)
    print(f"seed={seed}")
    rng = random.Random(seed)
    rig, timeline = await call_with_timeline(rig_factory, family)
    losses = [rng.choice((1, 3, 5, 7, 161)) for _ in range(6)]
    for lost in losses:
        target = len(timeline) + rng.randrange(8, 20)  # a random moment, frames after the last loss
        await eventually(lambda: len(timeline) >= target, "a random moment")  # noqa: B023
        count = len(rig.sim.drops)
        rig.sim.drop_audio_bytes(lost)
        await eventually(lambda: len(rig.sim.drops) == count + 1, "the loss")  # noqa: B023
    await eventually(lambda: timeline[-1][0] > rig.sim.drops[-1] + 0.3, "audio after the last loss")
    drops = [*rig.sim.drops, float("inf")]
    for drop, following in itertools.pairwise(drops):
        bad = [t for t, f in timeline if drop <= t < following and not clean(f)]
        assert len(bad) <= 3, f"{len(bad)} noisy frames after a loss at {drop:.3f} (seed {seed})"
        assert not bad or bad[-1] - drop < 0.1, f"noise {bad[-1] - drop:.3f} s after the loss (seed {seed})"
    assert rig.modem.status.realignments == len(losses)
    assert rig.modem.status.as_dict()["realignments"] == len(losses)


async def test_a_burst_after_stalled_writes_keeps_every_sample_whole(rig_factory: RigFactory) -> None:
    # A loaded host reads nothing for a while, then a second of PCM at once, in reads of any size.
    rig, timeline = await call_with_timeline(rig_factory, Family.QUECTEL)
    for _ in range(3):
        rig.sim.stall_writes(0.3)
        mark = time.monotonic()
        await eventually(lambda: timeline[-1][0] > mark + 0.5, "audio after the burst")  # noqa: B023
    assert all(clean(f) for _, f in timeline[5:]), "a frame of noise"
    assert rig.modem.status.realignments == 0
    assert rig.modem.status.stalls == 0  # a busy host is not blamed on the modem's stream
