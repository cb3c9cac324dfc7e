"""Kamailio's accounting file (lifeline.db.acc): its table, made before Kamailio starts, and its rows as events."""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.fsmode import private_database

# Kamailio's acc module inserts one row per accounted event through db_sqlite (time_mode 2:
# `time_attr` holds seconds.milliseconds of the wall clock) into lifeline.db.acc, a file only
# Kamailio writes (db_sqlite has no busy timeout: an insert meeting another writer is lost).
# The extra columns are set in kamailio.cfg.tmpl (db_extra). The daemon only reads it and keeps
# its cursor (the last folded id) in the main store, in the same transaction as the records.
ACC_TABLE = """
CREATE TABLE IF NOT EXISTS acc (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    method VARCHAR(16),
    from_tag VARCHAR(128),
    to_tag VARCHAR(128),
    callid VARCHAR(255),
    sip_code VARCHAR(3),
    sip_reason VARCHAR(128),
    time TIMESTAMP,
    time_attr DOUBLE,
    src_user VARCHAR(64),
    dst_user VARCHAR(64),
    start_time VARCHAR(32),
    cdr_mode VARCHAR(16),
    src_name VARCHAR(128),
    pai VARCHAR(255),
    trunk VARCHAR(512)
)
"""

# Columns added to `acc` after the first release: (name, SQL type), added to older files at start.
ACC_ADDED_COLUMNS = (("src_name", "VARCHAR(128)"), ("pai", "VARCHAR(255)"), ("trunk", "VARCHAR(512)"))


def acc_path(db_path: Path) -> Path:
    """Where Kamailio writes its accounting events, beside the store."""
    return db_path.with_name(db_path.name + ".acc")


def prepare_acc_file(path: Path, folded_upto: int) -> None:
    """Before Kamailio starts: the file (0600, WAL) with today's columns, minus the events already folded."""
    private_database(path)  # call events hold numbers: 0600 like the store
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as acc:
        acc.execute("PRAGMA journal_mode=WAL")
        acc.execute("PRAGMA busy_timeout=5000")
        acc.execute(ACC_TABLE)
        have = {row[1] for row in acc.execute("PRAGMA table_info(acc)")}
        for name, sql_type in ACC_ADDED_COLUMNS:
            if name not in have:  # Kamailio's insert names every db_extra column
                acc.execute(f"ALTER TABLE acc ADD COLUMN {name} {sql_type}")
        # Only now, with no Kamailio writing, may the daemon write to this file.
        acc.execute("DELETE FROM acc WHERE id <= ?", [folded_upto])


def drop_folded(conn: sqlite3.Connection, upto: int) -> None:
    """Drop the events up to id `upto` (folded into records already): for a backup's copy of the file."""
    conn.execute("DELETE FROM acc WHERE id <= ?", [upto])


def count_events(conn: sqlite3.Connection) -> int:
    """How many call events the file holds."""
    return int(conn.execute("SELECT COUNT(*) FROM acc").fetchone()[0])


class AccReader:
    """Reads the file Kamailio writes, read-only and without ever making Kamailio wait (WAL)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    def after(self, event_id: int, limit: int) -> list[dict[str, Any]]:
        """Up to limit rows written after this id, oldest first ([] while Kamailio has made no file)."""
        if self._conn is None:
            if not self.path.exists():
                return []
            self._conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        try:
            cursor = self._conn.execute("SELECT * FROM acc WHERE id > ? ORDER BY id LIMIT ?", [event_id, limit])
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        except sqlite3.Error:
            self.close()
            raise

    def close(self) -> None:
        """Let go of the file (it is opened again on the next read)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@dataclass(frozen=True)
class AccEvent:
    """One row Kamailio's acc module wrote."""

    id: int
    method: str
    from_tag: str
    to_tag: str
    call_id: str
    sip_code: int
    sip_reason: str
    time: float
    src_user: str
    dst_user: str
    start_time: float | None
    mode: str
    src_name: str = ""  # the From display name
    pai: str = ""  # the P-Asserted-Identity URI
    trunk: str = ""  # the trunk agent's X-Lifeline-Trunk header (trunkinfo.py), on its INVITE or final answer

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> AccEvent:
        """Parse an acc row; ValueError naming the column on bad data."""
        try:
            start = row.get("start_time")
            return cls(
                id=int(row["id"]),
                method=str(row["method"]),
                from_tag=str(row["from_tag"] or ""),
                to_tag=str(row["to_tag"] or ""),
                call_id=str(row["callid"]),
                sip_code=int(row["sip_code"]),
                sip_reason=str(row["sip_reason"] or ""),
                time=float(row["time_attr"]),
                src_user=str(row.get("src_user") or ""),
                dst_user=str(row.get("dst_user") or ""),
                start_time=float(start) if start not in (None, "") else None,
                mode=str(row.get("cdr_mode") or "survival"),
                src_name=str(row.get("src_name") or ""),
                pai=str(row.get("pai") or ""),
                trunk=str(row.get("trunk") or ""),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"acc row {row.get('id')}: {err!r}") from err
