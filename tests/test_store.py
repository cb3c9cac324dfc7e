from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.errors import StoreError
from gateway.lab.daemon import LifelineProcess
from gateway.mirror.records import Extension
from gateway.store import Store


def ext(number: str, user: str | None = None, password: str = "a-long-password") -> Extension:
    return Extension.from_password(number=number, auth_user=user or number, realm="asterisk", password=password)


def test_store_is_wal_and_keeps_no_clear_password(tmp_path: Path) -> None:
    store = Store(tmp_path / "l.db")
    store.replace_extensions([ext("1001", password="very-secret-password")], source="test")
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"very-secret-password" not in raw


def test_subscriber_view_serves_kamailio_auth_columns(tmp_path: Path) -> None:
    store = Store(tmp_path / "l.db")
    e = ext("1001", "alice")
    store.replace_extensions([e], source="test")
    row = store.db.execute("SELECT username, domain, ha1, ha1_sha256 FROM subscriber").fetchone()
    assert row == ("alice", "asterisk", e.ha1, e.ha1_sha256)


def test_auth_user_moving_to_another_number_replaces_the_old_row(tmp_path: Path) -> None:
    store = Store(tmp_path / "l.db")
    store.replace_extensions([ext("1001", "alice")], source="test")
    store.replace_extensions([ext("1009", "alice")], source="test")
    assert [r["number"] for r in store.extensions()] == ["1009"]


def test_a_failed_import_changes_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "l.db")
    store.replace_extensions([ext("1001")], source="test")
    clash = [ext("1002", "dup"), ext("1003", "dup")]  # unique auth_user violated mid-batch
    with pytest.raises(StoreError):
        store.replace_extensions(clash, source="test")
    assert [r["number"] for r in store.extensions()] == ["1001"]


def test_state_and_events_persist(tmp_path: Path) -> None:
    store = Store(tmp_path / "l.db")
    store.set_state("mode", {"mode": "survival"})
    store.add_event("mode", "normal → survival: drill")
    store.close()
    again = Store(tmp_path / "l.db")
    assert again.get_state("mode") == {"mode": "survival"}
    assert again.recent_events()[0]["message"] == "normal → survival: drill"


def test_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="cannot open the store"):
        Store(blocker / "sub" / "l.db")


OPEN_STORE = "import sys; from pathlib import Path; from gateway.store import Store; Store(Path(sys.argv[1])).close()"


def test_processes_opening_a_new_store_at_the_same_moment_all_get_it(tmp_path: Path) -> None:
    # The daemon starting while `lifeline status` asks: both create the same new database at once.
    for round_ in range(4):
        path = tmp_path / f"round{round_}" / "lifeline.db"
        procs = [
            subprocess.Popen([sys.executable, "-c", OPEN_STORE, str(path)], stderr=subprocess.PIPE, text=True)
            for _ in range(6)
        ]
        results = [(p.wait(60), p.stderr.read() if p.stderr else "") for p in procs]
        assert all(code == 0 for code, _ in results), [err[-300:] for code, err in results if code]


def test_status_before_the_first_run_creates_no_database(tmp_path: Path) -> None:
    daemon = LifelineProcess(tmp_path, {})
    done = daemon.cli("status", "--json", check=False)
    assert done.returncode != 0 and json.loads(done.stdout)["mode"]["reason"] == "never started"
    assert not Path(json.loads(done.stdout)["paths"]["database"]).exists()
