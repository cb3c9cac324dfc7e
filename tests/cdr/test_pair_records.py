"""A pair's call records: one id per call on both boxes; the box the BYE reaches writes it from the peer's start."""

from __future__ import annotations

import base64
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from gateway.cdr import trunkinfo
from gateway.cdr.acc import acc_path
from gateway.cdr.capture import Capture
from gateway.cdr.clock import BestClock, SystemHost
from gateway.cdr.pair import record_id
from gateway.mirror.records import Extension
from gateway.sip.call_starts import CallStart, parse_call_start
from gateway.store import Store

START = "1764590400.123456"  # $avp(cdr_start) as Kamailio writes it: seconds.microseconds


def test_the_same_call_gets_the_same_id_on_both_boxes() -> None:
    a = record_id("c1@10.0.0.5", "ft1", float(START))
    b = record_id("c1@10.0.0.5", "ft1", float(START))  # the other box parses the same text
    assert a == b


def test_a_different_from_tag_or_call_id_gets_a_different_id() -> None:
    ids = {
        record_id("c1@10.0.0.5", "ft1", float(START)),
        record_id("c1@10.0.0.5", "ft2", float(START)),
        record_id("c2@10.0.0.5", "ft1", float(START)),
        record_id("c1@10.0.0.5", "ft1", float(START) + 1),  # a Call-ID a phone used again, later
    }
    assert len(ids) == 4


def test_the_id_is_a_uuidv8_ordered_by_the_calls_start_like_uuidv7() -> None:
    value = uuid.UUID(record_id("c1", "ft", float(START)))
    assert value.version == 8 and value.variant == uuid.RFC_4122
    assert value.int >> 80 == 1764590400123  # the start in Unix milliseconds, where UUIDv7 has it
    earlier, later = (record_id(f"c{n}", "ft", float(START) + n) for n in (9, 1000))
    assert earlier < later  # sorts by start, whatever the hash bits


def note(**fields: str) -> str:
    """An item of cdr_starts as route[HA_CDR_ANSWER] writes it (base64 free text, "" for a null)."""
    order = ("start", "mode", "from_trunk", "ft", "fU", "tU", "fn", "ai", "trunk")
    words = [base64.b64encode(fields.get(name, "").encode()).decode() for name in order]
    return " ".join(["1", fields.get("answer", "1764590402.5"), fields.get("code", "200"), *words])


def test_a_start_note_reads_back_and_anything_else_is_refused() -> None:
    text = note(start=START, mode="survival", ft="ft1", fU="1001", tU="1002", fn='"Alice Smith"', ai="")
    assert parse_call_start(text) == CallStart(
        1764590402.5, 200, float(START), "survival", False, "ft1", "1001", "1002", '"Alice Smith"', "", ""
    )
    assert parse_call_start(note(start=START, from_trunk="1", trunk="x=1")) is not None
    for bad in ("", "1 2 3", note(start="soon"), "2" + note(start=START)[1:], note(start=START) + " extra"):
        assert parse_call_start(bad) is None, bad


# --- two boxes' stores and captures, fed acc rows as each box's Kamailio writes them ------------------------------


def acc(store: Store, method: str, code: str, wall: float, **extra: Any) -> None:
    """An acc row of call c1 (alice 1001 calls bob 1002, From tag ft1)."""
    row: dict[str, Any] = {
        "method": method,
        "from_tag": "ft1",
        "to_tag": "tt",
        "callid": "c1",
        "sip_code": code,
        "sip_reason": "",
    }
    row |= {"time_attr": wall, "src_user": "1001", "dst_user": "1002", "cdr_mode": "survival", **extra}
    with sqlite3.connect(acc_path(store.path)) as db:
        db.execute(f"INSERT INTO acc ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})", list(row.values()))


def box(path: Path, starts: dict[str, CallStart], ends: dict[str, tuple[float, str]]) -> tuple[Store, Capture]:
    """A box's store and capture; starts and ends: what its Kamailio knows (its own and, by DMQ, the peer's)."""
    store = Store(path)
    extensions = (
        Extension.from_password(number=n, auth_user=n, realm="r", password=f"pw-{n}") for n in ("1001", "1002", "1009")
    )
    store.replace_extensions(extensions, "test")
    clock = BestClock(SystemHost(), [], store)
    # 1009: the trunk agent's extension (calls from it come in from the trunk).
    capture = Capture(store, clock, ["webhook"], trunk_extension="1009", call_ends=ends.get, call_starts=starts.get)
    capture.prepare()
    return store, capture


def records(store: Store) -> list[dict[str, Any]]:
    with store.read() as conn:
        cursor = conn.execute("SELECT * FROM cdrs")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def outbox(store: Store) -> int:
    with store.read() as conn:
        return int(conn.execute("SELECT COUNT(*) FROM cdr_outbox").fetchone()[0])


def answered_through_a(a_store: Store, a: Capture, starts: dict[str, CallStart]) -> tuple[float, float]:
    """The call up through A: A's acc events, and the note A's Kamailio made (copied to B's by DMQ)."""
    start = time.time() - 60
    text = f"{start:.6f}"
    acc(a_store, "INVITE", "100", start, start_time=text)
    acc(a_store, "INVITE", "200", start + 2, start_time=text)
    a.step()
    starts["c1"] = CallStart(start + 2, 200, float(text), "survival", False, "ft1", "1001", "1002", "", "", "")
    return float(text), start + 2


def test_the_box_a_bye_reaches_writes_the_record_from_the_peers_start(tmp_path: Path) -> None:
    starts: dict[str, CallStart] = {}
    a_store, a = box(tmp_path / "a.db", starts, {})
    b_store, b = box(tmp_path / "b.db", starts, {})
    start, answer = answered_through_a(a_store, a, starts)
    # A dies; the BYE passes B, which has no record of the call but has A's note of its start.
    acc(b_store, "BYE", "200", start + 30, from_tag="tt", to_tag="ft1")
    assert b.step() == 1
    (record,) = records(b_store)
    assert record["state"] == "final" and record["disposition"] == "answered" and record["sip_code"] == 200
    assert (record["from_number"], record["to_number"], record["from_ext"], record["to_ext"]) == (
        "1001",
        "1002",
        "1001",
        "1002",
    )
    assert record["direction"] == "internal" and record["mode"] == "survival"
    assert abs(record["start_ts"] - start) < 0.01 and abs(record["answer_ts"] - answer) < 0.01
    assert abs(record["end_ts"] - (start + 30)) < 0.01 and record["hangup_cause"] == "callee hung up"
    assert outbox(b_store) == 1  # B delivers it from its own outbox
    # A's record of the same call (if A ever returns) has the same id: the sink keeps one.
    (own,) = records(a_store)
    assert own["id"] == record["id"] == record_id("c1", "ft1", start)
    # The BYE again (a retransmission, or read again): still one record.
    acc(b_store, "BYE", "200", start + 31, from_tag="tt", to_tag="ft1")
    assert b.step() == 0 and len(records(b_store)) == 1


def test_without_the_peers_start_the_bye_makes_no_record_as_before(tmp_path: Path) -> None:
    b_store, b = box(tmp_path / "b.db", {}, {})
    acc(b_store, "BYE", "200", time.time(), from_tag="tt", to_tag="ft1")
    assert b.step() == 0 and records(b_store) == [] and outbox(b_store) == 0


def test_a_call_set_up_and_ended_on_one_box_is_one_record_though_its_own_note_is_there(tmp_path: Path) -> None:
    starts: dict[str, CallStart] = {}
    a_store, a = box(tmp_path / "a.db", starts, {})
    start = time.time() - 60
    text = f"{start:.6f}"
    acc(a_store, "INVITE", "100", start, start_time=text)
    acc(a_store, "INVITE", "200", start + 2, start_time=text)
    starts["c1"] = CallStart(start + 2, 200, float(text), "survival", False, "ft1", "1001", "1002", "", "", "")
    acc(a_store, "BYE", "200", start + 30)  # the whole call in one pass of the capture
    assert a.step() == 1
    (record,) = records(a_store)
    assert record["hangup_cause"] == "caller hung up" and abs(record["answer_ts"] - (start + 2)) < 0.01


TRUNK = trunkinfo.encode({"call": "t1", "modem": "lte0", "number": "+4915112345678", "access": "LTE"})
CASES = {
    # (src, dst, PAI, trunk details on the INVITE, on the 2xx)
    "internal": ("1001", "1002", "", "", ""),
    "in from the trunk": ("1009", "1002", "<tel:+4915112345678>", TRUNK, TRUNK),
    "out to the trunk": ("1001", "+4930123456", "", "", TRUNK),
}


@pytest.mark.parametrize("case", CASES)
def test_the_peers_record_of_a_call_is_the_one_the_answering_box_writes(tmp_path: Path, case: str) -> None:
    src, dst, pai, invite_trunk, answer_trunk = CASES[case]
    starts: dict[str, CallStart] = {}
    ends: dict[str, tuple[float, str]] = {}
    (a_store, a), (b_store, b) = box(tmp_path / "a.db", starts, ends), box(tmp_path / "b.db", starts, ends)
    start = time.time() - 60
    text = f"{start:.6f}"
    common = {"src_user": src, "dst_user": dst, "start_time": text, "pai": pai}
    acc(a_store, "INVITE", "100", start, trunk=invite_trunk, **common)
    acc(a_store, "INVITE", "200", start + 2, trunk=answer_trunk or invite_trunk, **common)
    a.step()
    from_trunk = bool(invite_trunk)
    starts["c1"] = CallStart(
        start + 2, 200, float(text), "survival", from_trunk, "ft1", src, dst, "", pai, answer_trunk
    )
    acc(b_store, "BYE", "200", start + 30, from_tag="ft1", to_tag="tt")
    assert b.step() == 1
    ends["c1"] = (start + 30, "ft1")
    assert a.sweep() == 1  # A returns and closes its own with B's end
    (mine,), (theirs,) = records(a_store), records(b_store)
    same = ("id", "from_number", "to_number", "from_ext", "to_ext", "direction", "trunk", "trunk_call", "mode")
    assert {k: theirs[k] for k in same} == {k: mine[k] for k in same}, case
    assert abs(theirs["answer_ts"] - mine["answer_ts"]) < 0.01 and abs(theirs["end_ts"] - mine["end_ts"]) < 0.01
