"""The scheduled backup: service and timer verify, run a real CLI command, and install.sh ships them unenabled."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from gateway.cli.main import _parser
from tests.firmware.test_install import run, scratch

ROOT = Path(__file__).resolve().parents[2]
UNITS = ("lifeline-backup.service", "lifeline-backup.timer")
LIFELINE = "/opt/lifeline/venv/bin/lifeline"


def test_service_and_timer_verify_together(tmp_path: Path) -> None:
    stand_in = tmp_path / "lifeline"
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    for unit in UNITS:
        (tmp_path / unit).write_text((ROOT / "firmware/systemd" / unit).read_text().replace(LIFELINE, str(stand_in)))
    done = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / u) for u in UNITS)], capture_output=True, text=True, timeout=60
    )
    assert f"exit {done.returncode}\n{done.stdout}{done.stderr}".strip() == "exit 0"


def test_the_service_runs_backup_create_as_the_service_user() -> None:
    lines = (ROOT / "firmware/systemd/lifeline-backup.service").read_text().splitlines()
    (command,) = [line.removeprefix("ExecStart=") for line in lines if line.startswith("ExecStart=")]
    argv = shlex.split(command)
    assert argv[0] == LIFELINE
    args = _parser().parse_args(argv[1:])
    assert (args.command, args.backup_command, args.out, args.url) == ("backup", "create", None, None)
    for setting in ("User=lifeline", "Type=oneshot", "UMask=0077", "ProtectSystem=strict", "CapabilityBoundingSet="):
        assert setting in lines, setting
    timer = (ROOT / "firmware/systemd/lifeline-backup.timer").read_text().splitlines()
    assert "Persistent=true" in timer and any(line.startswith("OnCalendar=") for line in timer)


def test_install_ships_both_units_unenabled_and_uninstall_takes_them_away(tmp_path: Path) -> None:
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
