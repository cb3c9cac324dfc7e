"""A pair's standby follows the active box's mode; taking over, it starts from it; overrides carry their time."""

from __future__ import annotations

from pathlib import Path

from gateway.config import HealthConfig
from gateway.core.failover import FailoverPolicy
from gateway.core.mode import Mode, ModeController, Override
from gateway.store import Store


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def controller(tmp_path: Path, clock: Clock | None = None) -> ModeController:
    policy = FailoverPolicy(HealthConfig(hold_down_s=60))
    return ModeController(Store(tmp_path / "l.db"), policy, clock or Clock())


async def test_a_follower_takes_the_leaders_mode_not_its_own_probes(tmp_path: Path) -> None:
    mode = controller(tmp_path)
    await mode.follow(Mode.SURVIVAL, "following the active box")
    assert mode.mode is Mode.SURVIVAL and mode.status().following is Mode.SURVIVAL
    for _ in range(5):  # its own probes find the cloud: detection says NORMAL, the mode stays the leader's
        await mode.observe_probe(True)
    assert mode.mode is Mode.SURVIVAL and mode.status().detected is Mode.NORMAL
    # An override still wins over the leader's mode.
    await mode.set_override(Override.NORMAL, "typed")
    assert mode.mode is Mode.NORMAL
    await mode.set_override(Override.AUTO, "typed")
    assert mode.mode is Mode.SURVIVAL


async def test_taking_over_starts_from_the_followed_mode_and_own_probes_move_it_on(tmp_path: Path) -> None:
    clock = Clock()
    mode = controller(tmp_path, clock)
    await mode.follow(Mode.SURVIVAL, "following")
    await mode.follow(None, "this box is active now")
    assert mode.mode is Mode.SURVIVAL and mode.status().detected is Mode.SURVIVAL
    await mode.observe_probe(True)  # the cloud answers: from SURVIVAL that is RECOVERING, not NORMAL at once
    assert mode.mode is Mode.RECOVERING
    clock.now += 61
    await mode.observe_probe(True)
    assert mode.mode is Mode.NORMAL


async def test_an_override_keeps_when_it_was_set_and_the_peers_time_when_given(tmp_path: Path) -> None:
    mode = controller(tmp_path)
    assert mode.status().override_at == 0.0
    await mode.set_override(Override.SURVIVAL, "typed here")
    assert mode.status().override_at > 0
    await mode.set_override(Override.AUTO, "typed on the peer", at=1234.5)
    status = mode.status()
    assert (status.override, status.override_at) == (Override.AUTO, 1234.5)
    again = ModeController(Store(tmp_path / "l.db"))
    assert again.status().override_at == 1234.5
