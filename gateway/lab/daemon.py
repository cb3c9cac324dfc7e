"""Run the real Lifeline daemon as a child process, for tests, benchmarks and the lab."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gateway.lab.waits import wait_until


def _value(value: Any) -> str:
    """A TOML value: JSON literals for scalars, lists of them, and inline tables for dicts."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key} = {_value(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    return json.dumps(value)


def to_toml(data: dict[str, dict[str, Any]]) -> str:
    """TOML for a config of tables of scalars, lists and inline tables (e.g. trunk.modems)."""
    lines = []
    for table, values in data.items():
        lines.append(f"[{table}]")
        lines.extend(f"{key} = {_value(value)}" for key, value in values.items())
    return "\n".join(lines) + "\n"


class LifelineProcess:
    """`lifeline run` in a work directory, with the CLI at hand."""

    def __init__(self, workdir: Path, config: dict[str, dict[str, Any]], prefix: tuple[str, ...] = ()) -> None:
        self.workdir = workdir
        self.prefix = prefix  # e.g. ("ip", "netns", "exec", NAME) to run the daemon inside a namespace
        workdir.mkdir(parents=True, exist_ok=True)
        config.setdefault("paths", {}).update({"data_dir": str(workdir / "data"), "run_dir": str(workdir / "run")})
        config.setdefault("log", {}).setdefault("format", "json")
        # The lab never pings the host's real default gateway: only what a test built is probed.
        config.setdefault("health", {}).setdefault("lan_target", "off")
        # The network API on a free port: daemons of parallel tests (and a real one) never collide on 8443.
        config.setdefault("api", {}).setdefault("port", 0)
        self.config_path = workdir / "lifeline.toml"
        self.config_path.write_text(to_toml(config))
        self.log_path = workdir / "lifeline.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self.sip_port = 0  # known once started

    def cli(self, *args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run `lifeline --config … ARGS` and return the finished process."""
        cmd = [sys.executable, "-m", "gateway", "--config", str(self.config_path), *args]
        return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=timeout)

    def start(self, timeout: float = 30.0) -> dict[str, Any]:
        """Start the daemon and wait until its API answers; returns the first status."""
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [*self.prefix, sys.executable, "-m", "gateway", "--config", str(self.config_path), "run"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            done = self.cli("status", "--json", check=False)
            if done.returncode == 0:
                status = dict(json.loads(done.stdout))
                self.sip_port = int(status["sip"]["port"])
                return status
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"lifeline did not start:\n{self.log_path.read_text()[-3000:]}")

    def status(self) -> dict[str, Any]:
        """`lifeline status --json` of the running daemon."""
        return dict(json.loads(self.cli("status", "--json").stdout))

    def logged(self, text: str) -> bool:
        """Whether the daemon's log file holds text yet (Kamailio's lines reach it late, through a pipe)."""
        return self.log_path.exists() and text in self.log_path.read_text()

    def log_lines(self, pattern: str) -> list[str]:
        """Kamailio's and the agent's lines, and the daemon's events, in its log that match the regex pattern."""
        found = []
        for raw in self.log_path.read_text().splitlines() if self.log_path.exists() else []:
            try:
                entry = json.loads(raw)
            except json.JSONDecodeError:
                continue
            text = str(entry.get("line") or entry.get("event") or "")
            if re.search(pattern, text):
                found.append(text)
        return found

    def wait_log(self, pattern: str, within: float = 10.0) -> list[str]:
        """log_lines(pattern) once there is one (they reach the log late, through a pipe)."""
        wait_until(lambda: bool(self.log_lines(pattern)), f"a log line matching {pattern!r}", within, 0.05)
        return self.log_lines(pattern)

    def set_mode(self, mode: str) -> None:
        """`lifeline mode MODE`."""
        self.cli("mode", mode)

    def kill(self) -> None:
        """SIGKILL the daemon alone (not its children), as the OOM killer would; stop() reaps it."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()

    def stop(self) -> int | None:
        """SIGTERM the daemon and wait; returns its exit code."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        return proc.returncode
