"""The bypass relay across a real process's life: start, crash (SIGKILL), hang (SIGSTOP) and stop.

A killed process cannot show its mock pins afterwards, so the child reports every pin change
through a pipe and this test plays the HAT's relay stage (gateway.hw.hatsim: coil on only while
`enable` is high and `kick` toggled within hold_ms). That is the honest level for the proof: after
a crash the real pins keep whatever level they had, and only the absence of kick edges - which this
test observes on the real process - drops the relay.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.hw.hatsim import RelayStageModel
from gateway.hw.pinmap import DEFAULT_PINMAP, load

PINMAP = load(DEFAULT_PINMAP)
HOLD_S = PINMAP.relay.hold_ms / 1000
ROLES = {PINMAP.relay.enable.pin: "enable", PINMAP.relay.kick.pin: "kick"}
CHILD = Path(__file__).with_name("relay_child.py")


class Daemon:
    """The child process, the HAT model fed from its pin reports, and its sd_notify messages."""

    def __init__(self, tmp_path: Path) -> None:
        self.hat = RelayStageModel(HOLD_S)
        self.lock = threading.Lock()
        self.last_event = 0.0
        self.notify_path = tmp_path / "notify.sock"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.notify_path))
        self.notify.settimeout(10)
        read_fd, write_fd = os.pipe()
        env = {**os.environ, "PIN_EVENTS_FD": str(write_fd), "NOTIFY_SOCKET": str(self.notify_path)}
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(tmp_path / "lifeline.db")],
            env=env,
            pass_fds=(write_fd,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        os.close(write_fd)
        self.eof = threading.Event()
        self.reader = threading.Thread(target=self._read, args=(read_fd,), daemon=True)
        self.reader.start()

    def _read(self, fd: int) -> None:
        with os.fdopen(fd, "rb") as pipe:
            for line in pipe:
                name, level, at = line.decode().split()
                if name in ROLES:
                    with self.lock:
                        self.hat.pin_changed(ROLES[name], level == "1", float(at))
                        self.last_event = float(at)
        self.eof.set()

    def energised(self) -> bool:
        with self.lock:
            return self.hat.energised(time.monotonic())

    def wait(self, energised: bool, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while self.energised() is not energised:
            if time.monotonic() > deadline:
                err = self.proc.stderr.read1() if self.proc.stderr and self.proc.poll() is not None else b""  # type: ignore[attr-defined]
                raise AssertionError(f"relay not {'energised' if energised else 'in bypass'} after {timeout} s {err!r}")
            time.sleep(0.02)
        return time.monotonic()

    def message(self) -> str:
        return self.notify.recv(4096).decode()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.notify.close()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path)
    yield d
    d.close()


def test_started_daemon_tells_systemd_and_holds_the_relay(daemon: Daemon) -> None:
    assert daemon.message() == "WATCHDOG=1"  # the first verdict, sent before READY
    assert daemon.message() == "READY=1\nSTATUS=running"
    assert daemon.message() == "WATCHDOG=1"  # and the health loop goes on pinging
    daemon.wait(energised=True, timeout=10)


def test_crash_drops_the_relay_to_bypass_within_the_hold_time(daemon: Daemon) -> None:
    daemon.wait(energised=True, timeout=10)
    daemon.proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()  # just after the crash: every pin change the process made is stamped before it
    daemon.proc.wait(10)
    assert daemon.eof.wait(5)
    # The pins are frozen where the crash left them - enable is still high - yet the coil drops.
    assert daemon.hat.enable is True
    assert daemon.last_event <= killed
    daemon.wait(energised=False, timeout=HOLD_S + 2)
    # Within the hold time of the crash, read from the stage's own clock (every pin change is in by now),
    # not from when this test got round to looking: a busy box may look late.
    assert not daemon.hat.energised(killed + HOLD_S), "the relay held on past the hold time after the crash"


def test_hung_daemon_drops_the_relay_and_takes_it_back_when_it_recovers(daemon: Daemon) -> None:
    daemon.wait(energised=True, timeout=10)
    daemon.proc.send_signal(signal.SIGSTOP)
    try:
        daemon.wait(energised=False, timeout=HOLD_S + 2)
    finally:
        daemon.proc.send_signal(signal.SIGCONT)
    daemon.wait(energised=True, timeout=5)


def test_clean_stop_releases_the_relay_at_once_and_says_stopping(daemon: Daemon) -> None:
    daemon.wait(energised=True, timeout=10)
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(10) == 0
    assert daemon.eof.wait(5)
    # Not by timing out: the daemon pulled enable low on its way out.
    assert daemon.hat.enable is False and not daemon.energised()
    messages = []
    while "STOPPING=1" not in messages:
        messages.append(daemon.message())
