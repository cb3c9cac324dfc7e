"""The SQLite store (sqlite-utils, WAL): extensions with HA1 only, events, and persisted state."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import sqlite_utils

from gateway.errors import StoreError
from gateway.mirror.records import Extension

SCHEMA_VERSION = 1

# Kamailio's auth_db reads credentials through this view, so the daemon's table
# stays the one source of truth and Kamailio never needs a copy.
SUBSCRIBER_VIEW = """
CREATE VIEW IF NOT EXISTS subscriber AS
SELECT auth_user AS username, realm AS domain, ha1, ha1_sha256, number
FROM extensions
"""


class Store:
    """Access to lifeline.db; safe to call from worker threads (one connection, one lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self.db = sqlite_utils.Database(conn)
            self.db.enable_wal()
            # FULL: a commit is on disk before we report it; power cuts are normal here.
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA busy_timeout=5000")
        except (sqlite3.Error, OSError) as err:
            raise StoreError(f"{path}: cannot open the store: {err}") from err
        self._lock = threading.Lock()
        self._migrate()

    def _migrate(self) -> None:
        with self._lock, self.db.conn:
            self.db.table("extensions").create(
                {
                    "number": str,
                    "auth_user": str,
                    "realm": str,
                    "ha1": str,
                    "ha1_sha256": str,
                    "display_name": str,
                    "groups": str,
                    "emergency_cid": str,
                    "source": str,
                    "updated_at": float,
                },
                pk="number",
                not_null={"auth_user", "realm", "ha1", "ha1_sha256"},
                if_not_exists=True,
            )
            self.db.table("extensions").create_index(["auth_user"], unique=True, if_not_exists=True)
            self.db.table("events").create(
                {"id": int, "ts": float, "kind": str, "message": str, "data": str},
                pk="id",
                if_not_exists=True,
            )
            self.db.table("state").create({"key": str, "value": str}, pk="key", if_not_exists=True)
            self.db.execute(SUBSCRIBER_VIEW)
            self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        """Close the connection."""
        self.db.conn.close()

    # --- extensions -------------------------------------------------------------------------

    def replace_extensions(self, extensions: Iterable[Extension], source: str) -> int:
        """Upsert these extensions in one transaction; all or nothing."""
        now = time.time()
        rows = []
        for ext in extensions:
            row = asdict(ext)
            row["groups"] = json.dumps(list(ext.groups))
            row["source"] = source
            row["updated_at"] = now
            rows.append(row)
        try:
            with self._lock, self.db.conn:
                self.db.execute("BEGIN IMMEDIATE")
                # An auth user moving to another number must not trip the unique index.
                for row in rows:
                    self.db.execute(
                        "DELETE FROM extensions WHERE auth_user = ? AND number != ?",
                        [row["auth_user"], row["number"]],
                    )
                self.db.table("extensions").upsert_all(rows, pk="number")
        except sqlite3.Error as err:
            raise StoreError(f"could not store extensions: {err}") from err
        return len(rows)

    def extensions(self) -> list[dict[str, Any]]:
        """All extensions without their digests, ordered by number."""
        with self._lock:
            return [
                {k: v for k, v in row.items() if not k.startswith("ha1")}
                for row in self.db.table("extensions").rows_where(order_by="number")
            ]

    def count_extensions(self) -> int:
        """How many extensions the store holds."""
        with self._lock:
            return self.db.table("extensions").count

    # --- events and state -------------------------------------------------------------------

    def add_event(self, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        """Append an event (mode change, fault) for the status page and audits."""
        with self._lock, self.db.conn:
            self.db.table("events").insert(
                {"ts": time.time(), "kind": kind, "message": message, "data": json.dumps(data or {})}
            )

    def recent_events(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest events first."""
        with self._lock:
            rows = self.db.query("SELECT * FROM events ORDER BY id DESC LIMIT ?", [limit])
            return [{**r, "data": json.loads(r["data"] or "{}")} for r in rows]

    def get_state(self, key: str, default: Any = None) -> Any:
        """A persisted piece of state (JSON value)."""
        with self._lock:
            rows = list(self.db.query("SELECT value FROM state WHERE key = ?", [key]))
        return json.loads(rows[0]["value"]) if rows else default

    def set_state(self, key: str, value: Any) -> None:
        """Persist a piece of state durably."""
        with self._lock, self.db.conn:
            self.db.table("state").upsert({"key": key, "value": json.dumps(value)}, pk="key")
