"""Every systemd unit passes `systemd-analyze verify` (offline) with no complaint at all."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = sorted((ROOT / "firmware" / "systemd").glob("*.service"))
# The installed paths of the executables the units start; verify wants them to exist and be executable.
INSTALLED = ("/opt/lifeline/venv/bin/lifeline", "/opt/lifeline/bin/lifeline-provision")


def verify(unit_text: str, name: str, tmp_path: Path) -> str:
    stand_in = tmp_path / "bin" / "stand-in"
    stand_in.parent.mkdir(exist_ok=True)
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    for path in INSTALLED:
        unit_text = unit_text.replace(path, str(stand_in))
    (tmp_path / name).write_text(unit_text)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / name)], capture_output=True, text=True, timeout=60
    )
    # verify exits 0 on "unknown key, ignoring" and "failed to parse, ignoring": any output is a finding.
    return f"exit {done.returncode}\n{done.stdout}{done.stderr}".strip()


def test_there_are_units() -> None:
    assert {u.name for u in UNITS} >= {"lifeline.service", "lifeline-firstboot.service"}


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_verifies_cleanly(unit: Path, tmp_path: Path) -> None:
    assert verify(unit.read_text(), unit.name, tmp_path) == "exit 0"


def test_verify_would_catch_a_typo(tmp_path: Path) -> None:
    text = (ROOT / "firmware/systemd/lifeline.service").read_text().replace("WatchdogSec=30s", "WatchdogSec=soon")
    assert "Failed to parse sec value" in verify(text, "lifeline.service", tmp_path)


def test_daemon_unit_is_notify_with_watchdog_and_hardened() -> None:
    unit = (ROOT / "firmware/systemd/lifeline.service").read_text()
    lines = set(unit.splitlines())
    for setting in (
        "Type=notify",
        "WatchdogSec=30s",
        "User=lifeline",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "Restart=on-failure",
    ):
        assert setting in lines, setting
    # The heartbeat pings at least every second: far inside the watchdog (half of it is the usual rule).
    from gateway.hw.heartbeat import MAX_TICK_S

    assert MAX_TICK_S * 2 <= 30
