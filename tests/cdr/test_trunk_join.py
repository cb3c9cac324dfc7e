"""One inbound trunk call is one record, however many ring-group legs the agent sent; trunk details land in it.

Capture reads acc rows the way Kamailio writes them (the same file and columns); the real
Kamailio path is covered end to end in test_trunk_calls.py.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gateway.cdr import trunkinfo
from gateway.cdr.acc import acc_path
from gateway.cdr.capture import Capture
from gateway.cdr.clock import BestClock, FakeClockSource
from gateway.cdr.records import ClockKind
from gateway.mirror.records import Extension
from gateway.store import Store
from gateway.trunk.supervisor import ModemNetworkClock
from tests.cdr.test_clock import FakeHost

CALLER = "+4915112345678"


class Acc:
    """Writes acc rows as Kamailio does for the agent's legs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.wall = 1_764_064_800.0

    def event(self, call: str, method: str, code: int, *, to: str, trunk: str | None = None, tag: str = "ft") -> None:
        self.wall += 0.5
        with sqlite3.connect(self.path) as db:
            db.execute(
                "INSERT INTO acc (method, from_tag, to_tag, callid, sip_code, sip_reason, time_attr, src_user,"
                " dst_user, start_time, cdr_mode, src_name, pai, trunk)"
                " VALUES (?, ?, 'tt', ?, ?, '', ?, '1009', ?, ?, 'survival', ?, ?, ?)",
                [method, tag, call, str(code), self.wall, to, f"{self.wall:.6f}", CALLER, f"<tel:{CALLER}>", trunk],
            )


@pytest.fixture
def rig(tmp_path: Path) -> tuple[Store, Capture, Acc]:
    store = Store(tmp_path / "lifeline.db")
    store.replace_extensions(
        (
            Extension.from_password(number=n, auth_user=n, realm="r", password=f"pw-{n}")
            for n in ("1001", "1002", "1009")
        ),
        "test",
    )
    clock = BestClock(FakeHost(), [FakeClockSource(ClockKind.NTP, lambda: 1_764_064_800.0)])
    capture = Capture(store, clock, ["webhook"], trunk_extension="1009")
    capture.prepare()
    return store, capture, Acc(acc_path(store.path))


def delivered(store: Store) -> list[dict[str, Any]]:
    with store.read() as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute(
            "SELECT c.* FROM cdrs c JOIN cdr_outbox o ON o.cdr_seq = c.seq WHERE o.sink = 'webhook' ORDER BY c.seq"
        ).fetchall()
        conn.row_factory = None
    return [dict(r) for r in rows]


def header(uid: str, **more: str) -> str:
    return trunkinfo.encode({"call": uid, "modem": "lte0", "imei": "867698041234567", "number": CALLER, **more})


def test_the_answered_leg_is_the_record_and_the_others_fold_into_it(rig: tuple[Store, Capture, Acc]) -> None:
    store, capture, acc = rig
    acc.event("leg-a", "INVITE", 100, to="1001", trunk=header("c1", access="LTE"))
    acc.event("leg-b", "INVITE", 100, to="1002", trunk=header("c1", access="LTE"))
    acc.event("leg-b", "INVITE", 200, to="1002")
    acc.event("leg-a", "INVITE", 487, to="1001")  # the agent cancels the other phone
    capture.step()
    acc.event("leg-b", "BYE", 200, to="1002")
    capture.step()
    records = delivered(store)
    assert len(records) == 1
    (record,) = records
    assert (record["call_id"], record["from_number"], record["to_ext"]) == ("leg-b", CALLER, "1002")
    assert (record["direction"], record["disposition"]) == ("inbound", "answered")
    assert json.loads(record["trunk"]) == {
        "call": "c1",
        "modem": "lte0",
        "imei": "867698041234567",
        "number": CALLER,
        "access": "LTE",
    }


def test_a_call_nobody_answers_is_one_unanswered_record(rig: tuple[Store, Capture, Acc]) -> None:
    store, capture, acc = rig
    acc.event("leg-a", "INVITE", 100, to="1001", trunk=header("c2"))
    acc.event("leg-b", "INVITE", 100, to="1002", trunk=header("c2"))
    capture.step()
    acc.event("leg-a", "INVITE", 487, to="1001")
    capture.step()
    assert delivered(store) == []  # the call is not over while bob's phone still rings
    acc.event("leg-b", "INVITE", 487, to="1002")
    capture.step()
    (record,) = delivered(store)
    assert (record["from_number"], record["disposition"]) == (CALLER, "no_answer")
    # A retransmitted final answer for the folded leg does not bring it back.
    acc.event("leg-a", "INVITE", 487, to="1001")
    capture.step()
    assert len(delivered(store)) == 1


def test_separate_trunk_calls_stay_separate_and_bad_headers_are_ignored(rig: tuple[Store, Capture, Acc]) -> None:
    store, capture, acc = rig
    acc.event("first", "INVITE", 100, to="1001", trunk=header("c3"))
    acc.event("first", "INVITE", 487, to="1001")
    acc.event("second", "INVITE", 100, to="1001", trunk="<script>=")
    acc.event("second", "INVITE", 487, to="1001")
    capture.step()
    records = delivered(store)
    assert [r["call_id"] for r in records] == ["first", "second"]
    assert records[1]["trunk"] is None


def test_outbound_details_arrive_with_the_answer_and_mark_emergencies(rig: tuple[Store, Capture, Acc]) -> None:
    store, capture, acc = rig
    with sqlite3.connect(acc.path) as db:  # a phone dials out: its INVITE carries nothing of the trunk
        db.execute(
            "INSERT INTO acc (method, from_tag, to_tag, callid, sip_code, sip_reason, time_attr, src_user, dst_user,"
            " start_time, cdr_mode) VALUES ('INVITE', 'ft', '', 'out', '100', '', ?, '1001', '110', ?, 'survival')",
            [acc.wall, f"{acc.wall:.6f}"],
        )
    acc.event("out", "INVITE", 200, to="110", trunk=header("c4", emergency="1", number="110"))
    acc.event("out", "BYE", 200, to="110")
    capture.step()
    (record,) = delivered(store)
    assert record["direction"] == "emergency"  # 110 is Germany's police: the agent's dial plan knows
    assert json.loads(record["trunk"])["emergency"] == "1"


def test_header_values_round_trip_and_refuse_junk() -> None:
    details = {"call": "c5", "operator": "Telekom.de & Co", "number": "+4930123", "unknown": "x", "iccid": None}
    value = trunkinfo.encode(details)
    assert "unknown" not in value and "iccid" not in value
    assert trunkinfo.decode(value) == {"call": "c5", "operator": "Telekom.de & Co", "number": "+4930123"}
    with pytest.raises(ValueError, match="names none of"):
        trunkinfo.decode("foo=bar")
    with pytest.raises(ValueError, match="not key=value"):
        trunkinfo.decode("no equals sign")
    with pytest.raises(ValueError, match="at most"):
        trunkinfo.encode({"operator": "x" * 600})


def test_the_modem_network_time_is_a_clock_only_while_the_agent_reports_it() -> None:
    mono = [1000.0]
    clock = ModemNetworkClock(monotonic=lambda: mono[0], max_age_s=10.0)
    assert clock.now() is None
    clock.report({"modems": [{"name": "lte0", "network_now": None}, {"name": "lte1", "network_now": 1_764_064_800.0}]})
    mono[0] += 4.0
    assert clock.now() == pytest.approx(1_764_064_804.0)
    mono[0] += 7.0  # the agent stopped reporting (it died, or the modem went away)
    assert clock.now() is None
    assert clock.kind is ClockKind.NETWORK
