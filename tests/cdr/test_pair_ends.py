"""A pair's call records: a call set up through box A and ended through box B is one record, A's."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from gateway.cdr.acc import acc_path
from gateway.cdr.capture import Capture
from gateway.cdr.clock import BestClock, SystemHost
from gateway.store import Store


def event(store: Store, method: str, code: str, wall: float) -> None:
    """An acc row as Kamailio writes it."""
    with sqlite3.connect(acc_path(store.path)) as db:
        db.execute(
            "INSERT INTO acc (method, from_tag, to_tag, callid, sip_code, sip_reason, time_attr, src_user, dst_user,"
            " start_time, cdr_mode) VALUES (?, 'ft', 'tt', 'c1', ?, '', ?, '1001', '1002', ?, 'survival')",
            [method, code, wall, f"{wall:.6f}" if method == "INVITE" else None],
        )


def box(path: Path, ends: dict[str, tuple[float, str]]) -> tuple[Store, Capture]:
    """A box's store and capture; ends: the calls its Kamailio knows ended (its own and the peer's)."""
    store = Store(path)
    capture = Capture(store, BestClock(SystemHost(), [], store), ["webhook"], call_ends=ends.get)
    capture.prepare()
    return store, capture


def rows(store: Store) -> list[tuple[str, str, float | None, str]]:
    with store.read() as conn:
        cur = conn.execute("SELECT call_id, state, end_ts, hangup_cause FROM cdrs")
        return [tuple(r) for r in cur.fetchall()]


def outbox(store: Store) -> int:
    with store.read() as conn:
        return int(conn.execute("SELECT COUNT(*) FROM cdr_outbox").fetchone()[0])


def test_the_box_that_saw_the_invite_closes_the_call_with_the_end_the_other_box_saw(tmp_path: Path) -> None:
    ends: dict[str, tuple[float, str]] = {}
    a_store, a = box(tmp_path / "a.db", ends)
    b_store, b = box(tmp_path / "b.db", ends)
    start = time.time() - 60
    event(a_store, "INVITE", "100", start)
    event(a_store, "INVITE", "200", start + 2)
    a.step()
    # The BYE passes box B (after the failover): B has no such call and makes no record.
    event(b_store, "BYE", "200", start + 30)
    b.step()
    b.sweep()
    assert rows(b_store) == [] and outbox(b_store) == 0
    # A's call stays open while nobody knows its end ...
    a.sweep()
    assert [r[1] for r in rows(a_store)] == ["open"]
    # ... and closes, once, with B's end, when B's Kamailio's note of it reaches A's (DMQ).
    ends["c1"] = (start + 30, "tt")
    assert a.sweep() == 1
    assert rows(a_store) == [("c1", "final", start + 30, "callee hung up (through the pair's other box)")]
    assert a.sweep() == 0 and outbox(a_store) == 1
