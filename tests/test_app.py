"""The daemon as a process: says where everything is, answers when Kamailio hangs, stops cleanly, leaves no Kamailio."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gateway.lab.daemon import LifelineProcess


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for our purposes.
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def wait_gone(pid: int, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.1)
    return False


def test_daemon_without_a_cloud_serves_locally_and_stops_cleanly(tmp_path: Path) -> None:
    daemon = LifelineProcess(tmp_path, {})
    try:
        status = daemon.start()
        assert status["sip"]["cloud"] is None
        assert status["sip"]["port"] > 0
        assert status["paths"]["database"] == str(tmp_path / "data" / "lifeline.db")
        # The daemon logs it once its start is through, which may be just after the API first answers.
        daemon.wait_log("lifeline running", 5)
        kamailio = status["sip"]["kamailio"]["pid"]
        assert daemon.stop() == 0
        assert wait_gone(kamailio)
    finally:
        daemon.stop()  # after a failure too: no daemon is left running (a second stop does nothing)


def test_kamailio_does_not_outlive_a_killed_daemon(tmp_path: Path) -> None:
    daemon = LifelineProcess(tmp_path, {})
    status = daemon.start()
    kamailio = status["sip"]["kamailio"]["pid"]
    os.kill(status["pid"], signal.SIGKILL)
    try:
        assert wait_gone(kamailio)
    finally:
        daemon.stop()  # reaps the killed daemon
        if alive(kamailio):  # the failure this test is for: not left behind holding the port
            os.killpg(kamailio, signal.SIGKILL)
    # A new daemon gets the same port back, as nothing lingers on it.
    again = LifelineProcess(tmp_path, {"sip": {"port": status["sip"]["port"]}})
    try:
        assert again.start()["sip"]["kamailio"]["state"] == "running"
        assert again.stop() == 0
    finally:
        again.stop()


def test_everyone_asking_for_the_status_at_once_gets_it_while_kamailio_hangs(tmp_path: Path) -> None:
    daemon = LifelineProcess(tmp_path, {})
    group = daemon.start()["sip"]["kamailio"]["pid"]
    try:
        os.killpg(group, signal.SIGSTOP)  # alive (the daemon does not restart it) but answering nothing
        try:
            # An installer's `lifeline status`, the status page and /metrics, at once: none may wait for
            # another's Kamailio questions past the CLI's own limit.
            with ThreadPoolExecutor(3) as pool:
                asked = [pool.submit(daemon.cli, "status", "--json", check=False) for _ in range(3)]
                answers = [future.result() for future in asked]
            assert [answer.returncode for answer in answers] == [0, 0, 0], [a.stderr for a in answers]
            for answer in answers:
                status = json.loads(answer.stdout)
                assert status["registrations"] is None and status["sip"]["edge"] is None
            text = daemon.cli("status").stdout
            assert "registrations: unknown" in text and "banned:        unknown" in text
        finally:
            with contextlib.suppress(ProcessLookupError):  # gone meanwhile: the failure above is the news
                os.killpg(group, signal.SIGCONT)
        assert daemon.stop() == 0
    finally:
        daemon.stop()  # after a failure too: no daemon is left running (a second stop does nothing)
