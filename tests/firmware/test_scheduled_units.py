"""The scheduled jobs (backup, drill): their units verify, run the right CLI command, and ship unenabled."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from gateway.cli.main import _parser
from tests.firmware.test_install import run, scratch

ROOT = Path(__file__).resolve().parents[2]
JOBS = ("backup", "drill")
UNITS = tuple(f"lifeline-{job}.{kind}" for job in JOBS for kind in ("service", "timer"))
LIFELINE = "/opt/lifeline/venv/bin/lifeline"


def unit_lines(name: str) -> list[str]:
    return (ROOT / "firmware/systemd" / name).read_text().splitlines()


def command_of(job: str) -> list[str]:
    """The job's ExecStart, split as systemd would."""
    (command,) = [
        line.removeprefix("ExecStart=") for line in unit_lines(f"lifeline-{job}.service") if "ExecStart=" in line
    ]
    return shlex.split(command)


@pytest.mark.parametrize("job", JOBS)
def test_service_and_timer_verify_together_with_the_daemon(tmp_path: Path, job: str) -> None:
    stand_in = tmp_path / "lifeline"
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    units = (f"lifeline-{job}.service", f"lifeline-{job}.timer", "lifeline.service")
    for unit in units:
        (tmp_path / unit).write_text((ROOT / "firmware/systemd" / unit).read_text().replace(LIFELINE, str(stand_in)))
    done = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / u) for u in units)], capture_output=True, text=True, timeout=60
    )
    assert f"exit {done.returncode}\n{done.stdout}{done.stderr}".strip() == "exit 0"


def test_the_backup_runs_backup_create_daily_as_the_service_user() -> None:
    argv = command_of("backup")
    assert argv[0] == LIFELINE
    args = _parser().parse_args(argv[1:])
    assert (args.command, args.backup_command, args.out, args.url) == ("backup", "create", None, None)
    lines = unit_lines("lifeline-backup.service")
    for setting in ("User=lifeline", "Type=oneshot", "UMask=0077", "ProtectSystem=strict", "CapabilityBoundingSet="):
        assert setting in lines, setting
    timer = unit_lines("lifeline-backup.timer")
    assert "Persistent=true" in timer and any(line.startswith("OnCalendar=") for line in timer)


def test_the_drill_runs_a_drill_monthly_as_the_service_user() -> None:
    argv = command_of("drill")
    assert argv[0] == LIFELINE
    args = _parser().parse_args(argv[1:])
    assert (args.command, args.json, args.emergency_test, args.force) == ("drill", False, False, False)
    lines = unit_lines("lifeline-drill.service")
    for setting in ("User=lifeline", "Type=oneshot", "After=lifeline.service", "ProtectSystem=strict"):
        assert setting in lines, setting
    timer = unit_lines("lifeline-drill.timer")
    for setting in ("OnCalendar=monthly", "Persistent=true"):
        assert setting in timer, setting
    assert any(line.startswith("RandomizedDelaySec=") for line in timer)


def test_install_ships_every_job_unenabled_and_uninstall_takes_them_away(tmp_path: Path) -> None:
    root = scratch(tmp_path, model=None)
    done = run("--yes", root=root)
    assert done.returncode == 0, done.stdout + done.stderr
    for unit in UNITS:
        installed = root / "etc/systemd/system" / unit
        assert installed.read_text() == (ROOT / "firmware/systemd" / unit).read_text()
        assert installed.stat().st_mode & 0o777 == 0o644
    assert not (root / "etc/systemd/system/timers.target.wants").exists()
    gone = run("--uninstall", root=root)
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert not any((root / "etc/systemd/system" / unit).exists() for unit in UNITS)
