"""lifeline.db from every earlier release migrates to today's schema and keeps its rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.errors import StoreError
from gateway.store import SCHEMA_VERSION, Store
from gateway.web.routes import Scope
from gateway.web.tokens import TokenStore

EARLIER = sorted((Path(__file__).parent / "data" / "store").glob("*.sql"))


def _shape(path: Path) -> dict[str, object]:
    """Tables with their columns (name, type, not-null, default), indexes and views: what the code relies on."""
    conn = sqlite3.connect(path)
    try:
        objects = conn.execute("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchall()
        shape: dict[str, object] = {}
        for kind, name in objects:
            if kind == "table":
                columns = conn.execute(f'PRAGMA table_info("{name}")').fetchall()
                shape[f"table {name}"] = sorted((c[1], c[2].upper(), c[3], c[4], c[5]) for c in columns)
            else:
                shape[f"{kind} {name}"] = True
        return shape
    finally:
        conn.close()


def _load(sql_file: Path, target: Path) -> None:
    conn = sqlite3.connect(target)
    conn.executescript(sql_file.read_text())
    conn.close()


def test_every_earlier_release_is_in_the_fixtures() -> None:
    assert len(EARLIER) == 5  # the five shapes the first week's releases wrote, all labelled version 1


@pytest.mark.parametrize("sql_file", EARLIER, ids=[p.stem for p in EARLIER])
def test_an_earlier_database_migrates_to_the_new_shape_and_keeps_its_rows(sql_file: Path, tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.db"
    Store(fresh).close()
    old = tmp_path / "old.db"
    _load(sql_file, old)

    store = Store(old)
    try:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert _shape(old) == _shape(fresh)
        (ext,) = store.extensions()
        assert (ext["number"], ext["display_name"], ext["vendor_id"]) == ("201", "Front desk", "")
        assert store.get_state("mode.override") == "survival"
        assert store.recent_events()[0]["message"].startswith("NORMAL -> SURVIVAL")
        with store.read() as conn:
            # Kamailio authenticates the phone through the view, from the migrated row.
            assert conn.execute("SELECT username, domain FROM subscriber").fetchall() == [("201", "cloud.test")]
            records = conn.execute("SELECT call_id, trunk_call FROM cdrs").fetchall()
        if "cdrs" in sql_file.read_text():
            assert records == [("call-1@lan", None)]
            assert store.alert_counts() == {"pending": 1, "delivered": 0}
    finally:
        store.close()
    Store(old).close()  # a second start finds nothing to do
    assert _shape(old) == _shape(fresh)


def test_a_database_from_a_newer_lifeline_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.execute("CREATE TABLE future (x)")
    conn.close()
    with pytest.raises(StoreError, match=f"newer Lifeline \\(schema version {SCHEMA_VERSION + 1}"):
        Store(path)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("future",)]
    conn.close()


def test_a_failing_step_leaves_the_database_as_it_was(tmp_path: Path) -> None:
    # A first-release database with something in the way of step 2's call records (a view where the
    # table goes): the mirror's part of step 2 has run by then, and none of it may stay.
    path = tmp_path / "old.db"
    _load(EARLIER[0], path)
    conn = sqlite3.connect(path)
    conn.execute("CREATE VIEW cdrs AS SELECT 1 AS x")
    conn.commit()
    before = _shape(path)
    conn.close()
    with pytest.raises(StoreError, match="cannot migrate from schema version 1"):
        Store(path)
    assert _shape(path) == before
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    conn.close()


VERSION_2 = Path(__file__).parent / "data" / "store" / "v2" / "06-2d34603.sql"


@pytest.mark.parametrize("daemon_ran", [True, False], ids=["with-its-token-table", "daemon-never-ran"])
def test_a_version_2_database_migrates_and_keeps_its_api_tokens(daemon_ran: bool, tmp_path: Path) -> None:
    # Version 2's daemon made api_tokens itself on first use, outside the schema's history: a store the
    # CLI alone wrote (extensions imported, the daemon never started) has no such table.
    fresh = tmp_path / "fresh.db"
    Store(fresh).close()
    old = tmp_path / "old.db"
    _load(VERSION_2, old)
    if not daemon_ran:
        conn = sqlite3.connect(old)
        conn.execute("DROP TABLE api_tokens")
        conn.commit()
        conn.close()

    store = Store(old)
    try:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert _shape(old) == _shape(fresh)
        assert [e["display_name"] for e in store.extensions()] == ["Front desk"]
        tokens = TokenStore(store)
        kept = [(t.id, t.name, t.scope.value) for t in tokens.tokens()]
        assert kept == ([("ta9beea8431", "vendor-noc", "read")] if daemon_ran else [])
        made, secret = tokens.create("after-upgrade", Scope.READ, "test")
        assert tokens.verify(secret) == made
    finally:
        store.close()
