"""A simulated modem per test and the real driver pointed at it through by-id links."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gateway.trunk.call import CallEvent
from gateway.trunk.driver import Modem
from gateway.trunk.link import LinkState, ModemSettings, Timeouts
from gateway.trunk.ports import ByIdFinder
from gateway.trunk.profiles import PROFILES, Family
from gateway.trunk.sim import FarEnd, SimConfig, SimModem, SimUsbReset

SCALE = 0.02  # the simulator's realistic delays, fifty times faster
# Timeouts for a simulated modem: far shorter than the real ones, still far longer than the sim needs.
TEST_TIMEOUTS = Timeouts(
    command=1.5, call=3.0, boot=5.0, port_drop=3.0, reenumerate=5.0, poll=0.3, retry=0.1, frame_gap=0.15
)


@dataclass
class Rig:
    sim: SimModem
    modem: Modem
    usb: SimUsbReset
    events: list[CallEvent] = field(default_factory=list)
    dtmf: list[str] = field(default_factory=list)


RigFactory = Callable[..., Any]


@pytest.fixture
async def rig_factory(tmp_path: Path) -> AsyncIterator[RigFactory]:
    rigs: list[Rig] = []

    async def make(
        family: Family,
        *,
        pin: str | None = None,
        far_end: FarEnd | None = None,
        timeouts: Timeouts = TEST_TIMEOUTS,
        **sim: Any,
    ) -> Rig:
        by_id = tmp_path / f"by-id-{len(rigs)}"
        config = SimConfig(family=family, time_scale=SCALE, seed=len(rigs) + 1, **sim)
        simulator = SimModem(config, by_id, far_end)
        await simulator.start()
        usb = SimUsbReset(simulator)
        modem = Modem(
            PROFILES[family],
            ByIdFinder(PROFILES[family], directory=by_id),
            ModemSettings(name=f"sim-{family.value}", pin=pin, timeouts=timeouts),
            usb_reset=usb,
        )
        rig = Rig(simulator, modem, usb)
        modem.on_call.add(rig.events.append)
        modem.on_dtmf.add(rig.dtmf.append)
        await modem.start()
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        await rig.modem.stop()
        await rig.sim.stop()


@pytest.fixture
async def ready(rig_factory: RigFactory, request: pytest.FixtureRequest) -> Rig:
    """A rig of the family named by the test's parameter, brought up to READY."""
    family: Family = request.param
    rig: Rig = await rig_factory(family)
    await wait_state(rig, LinkState.READY)
    return rig


async def wait_state(rig: Rig, *states: LinkState, within: float = 15.0) -> None:
    import asyncio

    try:
        async with asyncio.timeout(within):
            await rig.modem.wait_state(*states)
    except TimeoutError:
        status = rig.modem.status
        raise AssertionError(
            f"modem stayed {status.state.value} ({status.reason}; problem: {status.problem}) "
            f"instead of reaching {[s.value for s in states]}"
        ) from None


async def eventually(predicate: Callable[[], bool], what: str, within: float = 10.0) -> None:
    """Poll predicate until it holds; AssertionError naming what otherwise."""
    import asyncio
    import time

    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.0f} s waiting for {what}")
        await asyncio.sleep(0.01)
