"""Call records read by other capabilities (the CLI, the drill) and Kamailio's record switch: their SQL, here only."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

CHUNK = 500  # records read at a time: the progress moves, the memory stays small
_FINAL_SINCE = "FROM cdrs WHERE state = 'final' AND start_ts >= ?"


def _dicts(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def set_record_normal(conn: sqlite3.Connection, on: bool) -> None:
    """What Kamailio reads at start (htable `cdrcfg`, table cdr_settings): whether NORMAL calls are recorded too."""
    conn.execute(
        "INSERT INTO cdr_settings (key_name, key_type, value_type, key_value) VALUES ('record_normal', 0, 1, ?)"
        " ON CONFLICT (key_name) DO UPDATE SET key_value = excluded.key_value",
        ["1" if on else "0"],
    )


def count_final_since(conn: sqlite3.Connection, since: float) -> int:
    """How many final records started at or after `since`."""
    return int(conn.execute(f"SELECT COUNT(*) {_FINAL_SINCE}", [since]).fetchone()[0])


def final_since(conn: sqlite3.Connection, since: float) -> Iterator[list[dict[str, Any]]]:
    """The final records started at or after `since`, oldest first, CHUNK rows at a time."""
    cursor = conn.execute(f"SELECT * {_FINAL_SINCE} ORDER BY seq", [since])
    names = [d[0] for d in cursor.description]
    while rows := cursor.fetchmany(CHUNK):
        yield [dict(zip(names, row, strict=True)) for row in rows]


def newest(conn: sqlite3.Connection, limit: int | None) -> list[dict[str, Any]]:
    """The newest `limit` records (all without one), oldest first."""
    return _dicts(
        conn.execute(
            "SELECT * FROM (SELECT * FROM cdrs ORDER BY seq DESC LIMIT ?) ORDER BY seq",
            [-1 if limit is None else limit],  # SQLite: a negative LIMIT means none
        )
    )


def count(conn: sqlite3.Connection) -> int:
    """How many records there are (merged ring-group legs too)."""
    return int(conn.execute("SELECT COUNT(*) FROM cdrs").fetchone()[0])


def deliveries(conn: sqlite3.Connection) -> dict[int, dict[str, str]]:
    """Each queued record's delivery state per sink, by its seq."""
    delivery: dict[int, dict[str, str]] = {}
    for sink, seq, state in conn.execute("SELECT sink, cdr_seq, state FROM cdr_outbox").fetchall():
        delivery.setdefault(seq, {})[sink] = state
    return delivery


def of_calls(conn: sqlite3.Connection, call_ids: list[str]) -> list[dict[str, Any]]:
    """The records of these calls (not merged legs), each with its delivery state per sink."""
    marks = ",".join("?" * len(call_ids))
    rows = conn.execute(
        f"SELECT seq, call_id, state, disposition, mode FROM cdrs WHERE call_id IN ({marks})"
        " AND state != 'merged' ORDER BY seq",
        call_ids,
    ).fetchall()
    found: list[dict[str, Any]] = []
    for seq, call_id, state, disposition, mode in rows:
        outbox = conn.execute("SELECT sink, state FROM cdr_outbox WHERE cdr_seq = ?", [seq]).fetchall()
        delivery = {str(sink): str(st) for sink, st in outbox}
        found.append(
            {"call_id": call_id, "seq": seq, "state": state, "disposition": disposition, "mode": mode}
            | {"delivery": delivery}
        )
    return found


def backlog(conn: sqlite3.Connection) -> int:
    """Records not yet delivered to every sink."""
    row = conn.execute("SELECT COUNT(DISTINCT cdr_seq) FROM cdr_outbox WHERE state != 'delivered'").fetchone()
    return int(row[0] or 0)


def prune_delivered(conn: sqlite3.Connection) -> None:
    """For a backup's copy: drop the records every sink acked, their deliveries, and legs folded into none left."""
    # Unanswered ring-group legs (`merged`) go with the record they were folded into.
    conn.execute(
        "DELETE FROM cdrs WHERE state = 'final' AND seq IN"
        " (SELECT cdr_seq FROM cdr_outbox GROUP BY cdr_seq HAVING SUM(state != 'delivered') = 0)"
    )
    conn.execute(
        "DELETE FROM cdrs WHERE state = 'merged' AND (trunk_call IS NULL OR trunk_call NOT IN"
        " (SELECT trunk_call FROM cdrs WHERE state != 'merged' AND trunk_call IS NOT NULL))"
    )
    conn.execute("DELETE FROM cdr_outbox WHERE cdr_seq NOT IN (SELECT seq FROM cdrs)")


def count_calls(conn: sqlite3.Connection) -> int:
    """How many records there are of calls (merged ring-group legs left out)."""
    return int(conn.execute("SELECT COUNT(*) FROM cdrs WHERE state != 'merged'").fetchone()[0])


def count_pending_deliveries(conn: sqlite3.Connection) -> int:
    """How many deliveries to a sink are still pending."""
    return int(conn.execute("SELECT COUNT(*) FROM cdr_outbox WHERE state = 'pending'").fetchone()[0])
