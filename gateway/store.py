"""The SQLite store (sqlite-utils, WAL): extensions with HA1 only, events, and persisted state."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from gateway.extras import without

# sqlite-utils imports numpy, when installed (the bench's matplotlib brings it), to store numpy values,
# which Lifeline never writes: ~10 MiB resident in the daemon and every CLI command for nothing.
with without("numpy"):
    import sqlite_utils

from gateway import schema
from gateway.errors import StoreError
from gateway.fsmode import private_database
from gateway.mirror.records import Extension

# The version this Lifeline migrates every database to (SQLite's user_version); gateway/schema.py
# holds the steps, each in the module of the capability that owns the table.
SCHEMA_VERSION = schema.LATEST


def events_since(
    conn: sqlite3.Connection, kinds: tuple[str, ...], since: float, newest: int | None = None
) -> list[dict[str, Any]]:
    """The journal's events of these kinds from `since` on, oldest first (only the newest `newest` of them)."""
    rows = conn.execute(
        f"SELECT ts, kind, message, data FROM events WHERE kind IN ({','.join('?' * len(kinds))}) AND ts >= ?"
        " ORDER BY id DESC LIMIT ?",
        [*kinds, since, -1 if newest is None else newest],  # SQLite: a negative LIMIT means none
    ).fetchall()
    return [{"ts": r[0], "kind": r[1], "message": r[2], "data": json.loads(r[3] or "{}")} for r in reversed(rows)]


def _enable_wal(db: sqlite_utils.Database, within_s: float = 10.0) -> None:
    """WAL mode, also when other processes open the new database at the same moment.

    Switching the journal mode takes an exclusive lock that SQLite refuses at once ("database is
    locked"), without the busy wait, while another connection is creating or switching the same file
    (the daemon starting while `lifeline status` asks): look again shortly, for a bounded time.
    """
    deadline = time.monotonic() + within_s
    while True:
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.enable_wal()
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def read_state(conn: sqlite3.Connection, key: str, default: Any = None) -> Any:
    """A persisted piece of state (JSON value) from any connection to a store (a copy of one too)."""
    row = conn.execute("SELECT value FROM state WHERE key = ?", [key]).fetchone()
    return json.loads(row[0]) if row else default


# --- whole databases (backup and restore): the store's, or Kamailio's accounting file ------------


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to the SQLite database at path."""
    # Read-only: never checkpoints or truncates a WAL that the daemon or Kamailio is writing.
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        conn.execute("PRAGMA busy_timeout=5000")
        yield conn
    finally:
        conn.close()


def snapshot(path: Path, prune: Callable[[sqlite3.Connection], None]) -> tuple[bytes, sqlite3.Connection]:
    """A consistent copy of a live database in memory, pruned and vacuumed (no deleted rows left in free pages)."""
    memory = sqlite3.connect(":memory:")
    try:
        with read_only(path) as source:
            source.backup(memory)
        prune(memory)
        memory.commit()
        memory.execute("VACUUM")
        return memory.serialize(), memory
    except BaseException:
        memory.close()
        raise


def inspect_image(data: bytes) -> tuple[str, set[str], int]:
    """A database image's integrity check result ("ok"), its tables and its schema version (sqlite3.Error if none)."""
    with contextlib.closing(sqlite3.connect(":memory:")) as memory:
        memory.deserialize(data)
        check = str(memory.execute("PRAGMA integrity_check").fetchone()[0])
        tables = {str(r[0]) for r in memory.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return check, tables, int(memory.execute("PRAGMA user_version").fetchone()[0])


def write_image(path: Path, data: bytes) -> None:
    """A database image written to path as a WAL database (0600, before SQLite writes a byte)."""
    private_database(path)
    with contextlib.closing(sqlite3.connect(":memory:")) as memory, contextlib.closing(sqlite3.connect(path)) as out:
        memory.deserialize(data)
        memory.backup(out)
        out.execute("PRAGMA journal_mode=WAL")


class Store:
    """Access to lifeline.db; safe to call from worker threads (one connection, one lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            private_database(path)  # 0600 in a 0750 directory before SQLite writes a byte
            conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self.db = sqlite_utils.Database(conn)
            self.db.execute("PRAGMA busy_timeout=5000")
            _enable_wal(self.db)
            # FULL: a commit is on disk before we report it; power cuts are normal here.
            self.db.execute("PRAGMA synchronous=FULL")
        except (sqlite3.Error, OSError) as err:
            raise StoreError(f"{path}: cannot open the store: {err}") from err
        self._lock = threading.Lock()
        self._migrate()

    def _migrate(self) -> None:
        with self._lock, self.db.conn:
            # One write transaction from the start: two processes migrating at once take turns
            # (the busy wait applies) instead of one failing halfway with "database is locked";
            # SQLite's DDL is transactional, so a failed step leaves the database as it was.
            self.db.execute("BEGIN IMMEDIATE")
            have = int(self.db.execute("PRAGMA user_version").fetchone()[0])
            if have > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: written by a newer Lifeline (schema version {have}; this one knows up to"
                    f" {SCHEMA_VERSION}): upgrade Lifeline, or restore a backup made by this version"
                )
            try:
                for version in range(have + 1, SCHEMA_VERSION + 1):
                    for _owner, step in schema.steps(version):
                        step(self.db.conn)
            except sqlite3.Error as err:
                raise StoreError(f"{self.path}: cannot migrate from schema version {have}: {err}") from err
            if have != SCHEMA_VERSION:
                self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        """Close the connection."""
        self.db.conn.close()

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """The connection under the store's lock, for a consistent read."""
        with self._lock:
            yield self.db.conn

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE … COMMIT, fully synced) under the lock; rolled back on error."""
        with self._lock:
            conn = self.db.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

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

    # --- directory mirror -------------------------------------------------------------------

    def mirror_rows(self, source: str) -> list[dict[str, Any]]:
        """The rows one directory source owns, digests included (to diff a new snapshot against)."""
        with self._lock:
            return list(self.db.query("SELECT * FROM extensions WHERE source = ?", [source]))

    def count_by_source(self) -> dict[str, int]:
        """How many extensions each source (a directory, an imported file) contributed."""
        with self._lock:
            rows = self.db.query("SELECT source, COUNT(*) AS n FROM extensions GROUP BY source ORDER BY source")
            return {r["source"]: r["n"] for r in rows}

    def ring_groups(self) -> list[dict[str, Any]]:
        """All ring groups, members decoded, ordered by number."""
        with self._lock:
            rows = self.db.query("SELECT * FROM ring_groups ORDER BY number")
            return [{**r, "members": json.loads(r["members"])} for r in rows]

    def apply_mirror(
        self,
        source: str,
        *,
        upserts: Iterable[tuple[str, str, Extension]],
        delete_numbers: Iterable[str],
        groups: Iterable[tuple[str, str, str, tuple[str, ...]]] | None,
        state_key: str,
        state: Any,
    ) -> None:
        """Apply one directory sync in a single transaction: upserts, deletions, groups and the sync state.

        upserts are (vendor_id, vendor_updated_at, extension); groups are (number, name, vendor_id,
        members) and replace all of this source's groups (None leaves them alone). Either all of it
        lands, cursor included, or none of it does.
        """
        now = time.time()
        rows = []
        for vendor_id, vendor_updated_at, ext in upserts:
            row = asdict(ext)
            row["groups"] = json.dumps(list(ext.groups))
            row["source"] = source
            row["updated_at"] = now
            row["vendor_id"] = vendor_id
            row["vendor_updated_at"] = vendor_updated_at
            rows.append(row)
        deletes = [[n] for n in delete_numbers]
        try:
            with self._lock, self.db.conn:
                self.db.execute("BEGIN IMMEDIATE")
                self.db.conn.executemany("DELETE FROM extensions WHERE number = ?", deletes)
                # An auth user moving to another number must not trip the unique index.
                self.db.conn.executemany(
                    "DELETE FROM extensions WHERE auth_user = ? AND number != ?",
                    [[r["auth_user"], r["number"]] for r in rows],
                )
                if rows:
                    self.db.table("extensions").upsert_all(rows, pk="number", batch_size=500)
                if groups is not None:
                    self.db.execute("DELETE FROM ring_groups WHERE source = ?", [source])
                    self.db.table("ring_groups").upsert_all(
                        (
                            {
                                "number": n,
                                "name": name,
                                "vendor_id": vid,
                                "members": json.dumps(list(m)),
                                "source": source,
                            }
                            for n, name, vid, m in groups
                        ),
                        pk="number",
                    )
                self.db.table("state").upsert({"key": state_key, "value": json.dumps(state)}, pk="key")
        except sqlite3.Error as err:
            raise StoreError(f"could not apply the directory sync from {source}: {err}") from err

    # --- events and state -------------------------------------------------------------------

    def add_event(self, kind: str, message: str, data: dict[str, Any] | None = None, ts: float | None = None) -> None:
        """Append an event (mode change, fault) for the status page and audits; ts: when it happened (now)."""
        with self._lock, self.db.conn:
            self.db.table("events").insert(
                {
                    "ts": time.time() if ts is None else ts,
                    "kind": kind,
                    "message": message,
                    "data": json.dumps(data or {}),
                }
            )

    def recent_events(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest events first."""
        with self._lock:
            rows = self.db.query("SELECT * FROM events ORDER BY id DESC LIMIT ?", [limit])
            return [{**r, "data": json.loads(r["data"] or "{}")} for r in rows]

    # --- alert outbox -----------------------------------------------------------------------

    def queue_alert(self, alert_id: str, channels: list[str], payload: dict[str, Any]) -> None:
        """Persist one alert for each channel, due now."""
        now = time.time()
        rows = [
            {
                "alert_id": alert_id,
                "channel": channel,
                "payload": json.dumps(payload),
                "created": now,
                "attempts": 0,
                "next_at": now,
                "delivered_at": None,
                "last_error": None,
            }
            for channel in channels
        ]
        with self._lock, self.db.conn:
            self.db.table("alerts").insert_all(rows)

    def pending_alerts(self, limit: int = 50) -> list[dict[str, Any]]:
        """Undelivered alerts, oldest first (each channel delivers them in this order)."""
        with self._lock:
            # Emergency alerts first, however many older ones wait (gateway.core.alerts: URGENT_PREFIX).
            rows = self.db.query(
                "SELECT * FROM alerts WHERE delivered_at IS NULL"
                " ORDER BY json_extract(payload, '$.type') LIKE 'emergency.%' DESC, id LIMIT ?",
                [limit],
            )
            return [{**r, "payload": json.loads(r["payload"])} for r in rows]

    def next_alert_due(self) -> float | None:
        """When the oldest undelivered alert of any channel is next due, if any."""
        with self._lock:
            rows = self.db.query(
                "SELECT MIN(next_at) AS t FROM alerts WHERE id IN"
                " (SELECT MIN(id) FROM alerts WHERE delivered_at IS NULL GROUP BY channel)"
                " OR (delivered_at IS NULL AND json_extract(payload, '$.type') LIKE 'emergency.%')"
            )
            row = list(rows)
        return row[0]["t"] if row else None

    def alert_delivered(self, row_id: int) -> None:
        """Mark one alert row delivered."""
        with self._lock, self.db.conn:
            self.db.execute("UPDATE alerts SET delivered_at = ?, last_error = NULL WHERE id = ?", [time.time(), row_id])

    def alert_failed(self, row_id: int, error: str, next_at: float) -> None:
        """Record a failed attempt and when to try again."""
        with self._lock, self.db.conn:
            self.db.execute(
                "UPDATE alerts SET attempts = attempts + 1, last_error = ?, next_at = ? WHERE id = ?",
                [error[:500], next_at, row_id],
            )

    def alert_counts(self) -> dict[str, int]:
        """Pending and delivered alert counts."""
        with self._lock:
            row = next(
                self.db.query(
                    "SELECT SUM(delivered_at IS NULL) AS pending,"
                    " SUM(delivered_at IS NOT NULL) AS delivered FROM alerts"
                )
            )
        return {"pending": int(row["pending"] or 0), "delivered": int(row["delivered"] or 0)}

    def get_state(self, key: str, default: Any = None) -> Any:
        """A persisted piece of state (JSON value)."""
        with self._lock:
            rows = list(self.db.query("SELECT value FROM state WHERE key = ?", [key]))
        return json.loads(rows[0]["value"]) if rows else default

    def set_state(self, key: str, value: Any) -> None:
        """Persist a piece of state durably."""
        with self._lock, self.db.conn:
            self.db.table("state").upsert({"key": key, "value": json.dumps(value)}, pk="key")
