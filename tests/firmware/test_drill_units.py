"""The scheduled drill: service and timer verify, run `lifeline drill`, and install.sh ships them unenabled."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from gateway.cli.main import _parser
from tests.firmware.test_install import run, scratch

ROOT = Path(__file__).resolve().parents[2]
UNITS = ("lifeline-drill.service", "lifeline-drill.timer")
LIFELINE = "/opt/lifeline/venv/bin/lifeline"


def test_service_and_timer_verify_together_with_the_daemon_they_need(tmp_path: Path) -> None:
    stand_in = tmp_path / "lifeline"
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    units = (*UNITS, "lifeline.service")
    for unit in units:
        (tmp_path / unit).write_text((ROOT / "firmware/systemd" / unit).read_text().replace(LIFELINE, str(stand_in)))
    done = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / u) for u in units)], capture_output=True, text=True, timeout=60
    )
    assert f"exit {done.returncode}\n{done.stdout}{done.stderr}".strip() == "exit 0"


def test_the_service_runs_a_drill_as_the_service_user_monthly() -> None:
    lines = (ROOT / "firmware/systemd/lifeline-drill.service").read_text().splitlines()
    (command,) = [line.removeprefix("ExecStart=") for line in lines if line.startswith("ExecStart=")]
    argv = shlex.split(command)
    assert argv[0] == LIFELINE
    args = _parser().parse_args(argv[1:])
    assert (args.command, args.json, args.emergency_test, args.force) == ("drill", False, False, False)
    for setting in ("User=lifeline", "Type=oneshot", "After=lifeline.service", "ProtectSystem=strict"):
        assert setting in lines, setting
    timer = (ROOT / "firmware/systemd/lifeline-drill.timer").read_text().splitlines()
    for setting in ("OnCalendar=monthly", "Persistent=true"):
        assert setting in timer, setting
    assert any(line.startswith("RandomizedDelaySec=") for line in timer)


def test_install_ships_both_units_unenabled_and_uninstall_takes_them_away(tmp_path: Path) -> None:
    root = scratch(tmp_path, model=None)
    done = run("--yes", root=root)
    assert done.returncode == 0, done.stdout + done.stderr
    for unit in UNITS:
        installed = root / "etc/systemd/system" / unit
        assert installed.read_text() == (ROOT / "firmware/systemd" / unit).read_text()
        assert installed.stat().st_mode & 0o777 == 0o644
    assert not (root / "etc/systemd/system/timers.target.wants/lifeline-drill.timer").exists()
    gone = run("--uninstall", root=root)
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert not any((root / "etc/systemd/system" / unit).exists() for unit in UNITS)
