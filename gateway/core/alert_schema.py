"""The alert outbox's table, as each schema version left it, and what a backup's copy does with it."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping


def _v2(conn: sqlite3.Connection) -> None:
    """One row per alert and channel, with its delivery attempts."""
    conn.execute(
        'CREATE TABLE IF NOT EXISTS "alerts" ("id" INTEGER PRIMARY KEY, "alert_id" TEXT, "channel" TEXT,'
        ' "payload" TEXT, "created" REAL, "attempts" INTEGER, "next_at" REAL, "delivered_at" REAL,'
        ' "last_error" TEXT)'
    )
    conn.execute('CREATE INDEX IF NOT EXISTS "idx_alerts_delivered_at_next_at" ON "alerts" ("delivered_at", "next_at")')


STEPS: Mapping[int, Callable[[sqlite3.Connection], None]] = {2: _v2}


def prune_delivered(conn: sqlite3.Connection) -> None:
    """Drop the alerts already delivered (a backup carries only what still waits)."""
    conn.execute("DELETE FROM alerts WHERE delivered_at IS NOT NULL")


def count(conn: sqlite3.Connection) -> int:
    """How many alert rows there are."""
    return int(conn.execute("SELECT COUNT(*) FROM alerts").fetchone()[0])
