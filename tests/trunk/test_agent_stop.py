"""The trunk agent stops cleanly with the daemon: its calls hung up and its modems let go, never killed."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.trunk.sim.thread import SimThread
from tests.trunk.lab import quectel_sim, start_trunked


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimThread]:
    with quectel_sim(tmp_path / "by-id", 4) as thread:
        yield thread


def test_the_agent_stops_with_the_daemon_and_is_not_killed(tmp_path: Path, sim: SimThread) -> None:
    # The daemon keeps an event stream open on the agent (emergency calls): stopping must not wait it out.
    daemon = start_trunked(tmp_path, sim.sim.by_id_dir, {})
    assert daemon.stop() == 0
    lines = [json.loads(line) for line in daemon.log_path.read_text().splitlines() if line.startswith("{")]
    stopped = [line for line in lines if line.get("event") == "trunk agent stopped" and "exit_code" in line]
    assert stopped and stopped[-1]["exit_code"] == 0, stopped
    assert not any("killed" in str(line.get("event")) for line in lines)


def test_a_daemon_killed_outright_takes_its_agent_with_it(tmp_path: Path, sim: SimThread) -> None:
    # An orphaned agent would keep the modem's port open, and the next daemon's agent could not use it.
    daemon = start_trunked(tmp_path, sim.sim.by_id_dir, {})
    agent_pid = int(daemon.status()["trunk"]["pid"])
    try:
        daemon.kill()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and _alive(agent_pid):
            time.sleep(0.1)
        assert not _alive(agent_pid), "the trunk agent outlived its daemon"
    finally:
        if _alive(agent_pid):
            os.kill(agent_pid, signal.SIGKILL)
        daemon.stop()


def _alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie waiting for its reaper."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"
