from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from gateway.lab.daemon import LifelineProcess

DATA = Path(__file__).parent.parent / "data"


def test_malformed_config_stops_with_the_key_named(tmp_path: Path) -> None:
    daemon = LifelineProcess(tmp_path, {"sip": {"port": "five"}, "survival": {"register_expires": 1}})
    done = daemon.cli("run", check=False)
    assert done.returncode == 2
    assert "sip.port = 'five'" in done.stderr
    assert "survival.register_expires = 1" in done.stderr and "greater than or equal to 10" in done.stderr


def test_bad_import_rows_are_reported_and_nothing_is_imported(tmp_path: Path) -> None:
    daemon = LifelineProcess(tmp_path, {})
    done = daemon.cli("extensions", "import", str(DATA / "extensions_bad.csv"), check=False)
    assert done.returncode == 1
    assert "3 bad row(s); nothing was imported" in done.stderr  # the short password is no error any more
    assert "line 3" in done.stderr and "line 6" in done.stderr
    assert "secret" not in done.stderr + done.stdout
    listed = daemon.cli("extensions", "list", "--json")
    assert json.loads(listed.stdout) == []


def test_import_then_list_shows_no_secrets(tmp_path: Path) -> None:
    daemon = LifelineProcess(tmp_path, {"cloud": {"realm": "pbx.example.com"}})
    done = daemon.cli("extensions", "import", str(DATA / "extensions_good.json"))
    assert "imported 2 extension(s)" in done.stdout
    rows = json.loads(daemon.cli("extensions", "list", "--json").stdout)
    assert [(r["number"], r["realm"]) for r in rows] == [("2001", "pbx.example.com"), ("2002", "pbx.example.com")]
    assert not any(key.startswith("ha1") for row in rows for key in row)
    with sqlite3.connect(tmp_path / "data" / "lifeline.db") as db:
        dump = "\n".join(db.iterdump())
    assert "first-secret-2001" not in dump


def test_status_and_mode_work_without_a_running_daemon(tmp_path: Path) -> None:
    daemon = LifelineProcess(tmp_path, {})
    status = daemon.cli("status", check=False)
    assert status.returncode == 3
    assert "NOT RUNNING" in status.stdout and "lifeline.db" in status.stdout
    done = daemon.cli("mode", "survival", "--reason", "storm warning")
    assert "it starts in SURVIVAL" in done.stdout
    data = json.loads(daemon.cli("status", "--json", check=False).stdout)
    assert data["mode"]["mode"] == "survival" and data["mode"]["reason"] == "storm warning"
