"""The real daemon under a stand-in service manager: READY, WATCHDOG pings and STOPPING over
$NOTIFY_SOCKET as systemd's Type=notify expects, with the hardware on gpiozero's MockFactory."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from gateway.lab.daemon import to_toml


def test_daemon_notifies_ready_pings_the_watchdog_and_says_stopping(tmp_path: Path) -> None:
    config = tmp_path / "lifeline.toml"
    config.write_text(
        to_toml(
            {
                "paths": {"data_dir": str(tmp_path / "data"), "run_dir": str(tmp_path / "run")},
                "health": {"lan_target": "off"},
                "log": {"format": "json"},
                "hardware": {"enabled": True, "pin_factory": "mock", "console": str(tmp_path / "console")},
            }
        )
    )
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(30)
    # WatchdogSec=2s: the daemon must ping at least every second.
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "2000000"}
    log = (tmp_path / "daemon.log").open("wb")
    cmd = [sys.executable, "-m", "gateway", "--config", str(config)]
    proc = subprocess.Popen([*cmd, "run"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        messages = []
        while "READY=1\nSTATUS=running" not in messages:
            messages.append(notify.recv(4096).decode())
        # READY comes after the API is up: the CLI gets an answer at once.
        status = json.loads(
            subprocess.run([*cmd, "status", "--json"], capture_output=True, text=True, timeout=30).stdout
        )
        assert status["hardware"]["relay"] == "bypass"  # no trunk owns the analog line
        assert status["hardware"]["faults"] == []
        notify.setblocking(False)
        while True:  # drop what queued up meanwhile: the spacing of fresh pings is what counts
            try:
                notify.recv(4096)
            except BlockingIOError:
                break
        notify.settimeout(30)
        pings = []
        while len(pings) < 4:
            if notify.recv(4096) == b"WATCHDOG=1":
                pings.append(time.monotonic())
        # systemd kills a service that stays silent for WatchdogSec (2 s here).
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        assert max(gaps) < 2.0, gaps
        proc.send_signal(signal.SIGTERM)
        while notify.recv(4096) != b"STOPPING=1":
            pass
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        notify.close()
        log.close()
    assert "hardware started" in (tmp_path / "daemon.log").read_text()
