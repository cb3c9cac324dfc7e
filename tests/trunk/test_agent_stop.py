"""The trunk agent stops cleanly with the daemon: its calls hung up and its modems let go, never killed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.trunk.profiles import Family
from gateway.trunk.sim import SimConfig
from gateway.trunk.sim.thread import SimThread
from tests.trunk.lab import start_trunked


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimThread]:
    thread = SimThread(SimConfig(Family.QUECTEL, time_scale=0.05, seed=4), tmp_path / "by-id")
    thread.start()
    yield thread
    thread.stop()


def test_the_agent_stops_with_the_daemon_and_is_not_killed(tmp_path: Path, sim: SimThread) -> None:
    # The daemon keeps an event stream open on the agent (emergency calls): stopping must not wait it out.
    daemon = start_trunked(tmp_path, sim.sim.by_id_dir, {})
    assert daemon.stop() == 0
    lines = [json.loads(line) for line in daemon.log_path.read_text().splitlines() if line.startswith("{")]
    stopped = [line for line in lines if line.get("event") == "trunk agent stopped" and "exit_code" in line]
    assert stopped and stopped[-1]["exit_code"] == 0, stopped
    assert not any("killed" in str(line.get("event")) for line in lines)
