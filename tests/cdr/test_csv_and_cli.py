"""Master.csv export (sink and CLI), `lifeline cdr list|export|purge`, and the retention purge."""

from __future__ import annotations

import csv
import io
import json
import random
import time
from pathlib import Path

import pytest

from gateway.cdr.csvfile import MASTER_CSV_COLUMNS, CsvDirectorySink, master_csv
from gateway.cdr.outbox import OutboxDb, SinkDelivery
from gateway.cdr.records import CdrRecord
from gateway.cdr.service import purge
from gateway.lab.daemon import LifelineProcess
from gateway.store import Store
from tests.cdr.helpers import add_record, queue

DAY = 86400.0
# Asterisk's Master.csv columns, in order, as /work/shared/research/pbx-apis.md lists them.
ASTERISK_COLUMNS = [
    "clid", "src", "dst", "dcontext", "channel", "dstchannel", "lastapp", "lastdata", "start", "answer", "end",
    "duration", "billsec", "disposition", "amaflags", "accountcode", "uniqueid", "userfield",
]  # fmt: skip


def column(name: str) -> int:
    return ASTERISK_COLUMNS.index(name)


def all_records(store: Store) -> list[CdrRecord]:
    with store.read() as conn:
        cursor = conn.execute("SELECT * FROM cdrs ORDER BY seq")
        names = [d[0] for d in cursor.description]
        return [CdrRecord.from_row(dict(zip(names, r, strict=True))) for r in cursor.fetchall()]


def rows_of(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_master_csv_has_asterisk_column_order_and_values(tmp_path: Path) -> None:
    assert list(MASTER_CSV_COLUMNS) == ASTERISK_COLUMNS
    store = Store(tmp_path / "lifeline.db")
    add_record(store)
    add_record(store, disposition="busy", sip_code=486, answer_ts=None, end_ts=1_764_064_803.0)
    add_record(store, disposition="no_answer", sip_code=487, answer_ts=None, end_ts=1_764_064_830.0)
    add_record(store, disposition="refused", sip_code=403, answer_ts=None, end_ts=1_764_064_800.2)
    text = master_csv(all_records(store))
    assert all(line.startswith('"') and line.endswith('"') for line in text.splitlines())  # every field quoted
    rows = rows_of(text)
    assert all(len(r) == 18 for r in rows)
    answered = rows[0]
    assert answered[column("src")] == "1001" and answered[column("dst")] == "1002"
    assert answered[column("start")] == "2025-11-25 10:00:00"
    assert answered[column("answer")] == "2025-11-25 10:00:04"
    assert answered[column("end")] == "2025-11-25 10:01:05"
    assert (answered[column("duration")], answered[column("billsec")]) == ("65", "61")
    assert answered[column("uniqueid")] == all_records(store)[0].id
    assert [r[column("disposition")] for r in rows] == ["ANSWERED", "BUSY", "NO ANSWER", "FAILED"]
    assert [r[column("answer")] for r in rows[1:]] == ["", "", ""]
    assert [r[column("billsec")] for r in rows[1:]] == ["0", "0", "0"]


async def test_csv_sink_rewrites_an_unsettled_batch_instead_of_duplicating_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "lifeline.db")
    queue(store, "csv", [add_record(store) for _ in range(4)])
    sink = CsvDirectorySink(tmp_path / "out")
    # A daemon wrote a batch and died before marking it: nothing is settled.
    first = all_records(store)
    await sink.push(first, "key-of-the-first-attempt")
    # Meanwhile more calls were recorded; the next attempt's batch is larger, with another key.
    queue(store, "csv", [add_record(store) for _ in range(3)])
    delivery = SinkDelivery(sink, OutboxDb(store), batch_size=10, rng=random.Random(1))
    await delivery.drain(lambda: True)
    written = [
        row[column("uniqueid")]
        for path in sorted((tmp_path / "out").glob("*.csv"))
        for row in rows_of(path.read_text())
    ]
    assert sorted(written) == sorted(r.id for r in all_records(store))
    assert not list((tmp_path / "out").glob(".*.tmp"))
    assert OutboxDb(store).counts("csv") == {"pending": 0, "delivered": 7, "quarantined": 0}


def test_retention_purges_delivered_records_only(tmp_path: Path) -> None:
    store = Store(tmp_path / "lifeline.db")
    now = time.time()
    old_delivered = add_record(store, final_at=now - 40 * DAY)
    new_delivered = add_record(store, final_at=now - 1 * DAY)
    old_pending = add_record(store, final_at=now - 40 * DAY)
    old_quarantined = add_record(store, final_at=now - 40 * DAY)
    old_half = add_record(store, final_at=now - 40 * DAY)  # delivered to one sink, not yet to the other
    old_unqueued = add_record(store, final_at=now - 40 * DAY)  # captured while no sink was configured
    with store.write() as conn:
        rows = [
            ("webhook", old_delivered, "delivered", now - 39 * DAY),
            ("webhook", new_delivered, "delivered", now - 1 * DAY),
            ("webhook", old_pending, "pending", now - 39 * DAY),
            ("webhook", old_quarantined, "quarantined", now - 39 * DAY),
            ("webhook", old_half, "delivered", now - 39 * DAY),
            ("csv", old_half, "pending", now - 39 * DAY),
        ]
        conn.executemany("INSERT INTO cdr_outbox (sink, cdr_seq, state, updated_at) VALUES (?, ?, ?, ?)", rows)
    assert purge(store, 30, now) == 1
    left = {r.seq for r in all_records(store)}
    assert left == {new_delivered, old_pending, old_quarantined, old_half, old_unqueued}
    with store.read() as conn:
        assert conn.execute("SELECT COUNT(*) FROM cdr_outbox WHERE cdr_seq = ?", [old_delivered]).fetchone()[0] == 0
    assert purge(store, 30, now) == 0
    assert purge(store, 30, now + 30 * DAY) == 1  # the newer delivered record's turn comes


@pytest.fixture
def audited(tmp_path: Path) -> tuple[LifelineProcess, Store]:
    daemon = LifelineProcess(tmp_path / "lifeline", {"cdr": {"retention_days": 30}})
    (daemon.workdir / "data").mkdir(parents=True)
    store = Store(daemon.workdir / "data" / "lifeline.db")
    now = time.time()
    a = add_record(store, from_number="+4930123456", from_ext=None, direction="inbound")
    b = add_record(store, disposition="busy", sip_code=486, answer_ts=None)
    c = add_record(store, to_number="+4917612345678", to_ext=None, direction="outbound")
    with store.write() as conn:
        conn.executemany(
            "INSERT INTO cdr_outbox (sink, cdr_seq, state, updated_at) VALUES (?, ?, ?, ?)",
            [("webhook", a, "delivered", now - 45 * DAY), ("webhook", b, "pending", now - 45 * DAY),
             ("webhook", c, "delivered", now - 5 * DAY)],
        )  # fmt: skip
    return daemon, store


def test_cli_list_masks_numbers_unless_asked(audited: tuple[LifelineProcess, Store]) -> None:
    daemon, _ = audited
    text = daemon.cli("cdr", "list").stdout
    assert "+4930123456" not in text and "+4917612345678" not in text
    assert "*********56" in text and "3 record(s)" in text
    assert "webhook:delivered" in text and "webhook:pending" in text
    assert "+4917612345678" in daemon.cli("cdr", "list", "--show-numbers").stdout
    listed = json.loads(daemon.cli("cdr", "list", "--json").stdout)
    assert [r["disposition"] for r in listed] == ["answered", "busy", "answered"]
    assert [r["delivery"] for r in listed] == [{"webhook": s} for s in ("delivered", "pending", "delivered")]
    assert listed[0]["from_number"] == "+4930123456"


def test_cli_export_writes_master_csv(audited: tuple[LifelineProcess, Store], tmp_path: Path) -> None:
    daemon, store = audited
    out = tmp_path / "export.csv"
    done = daemon.cli("cdr", "export", "--out", str(out))
    assert "exported 3 record(s)" in done.stderr
    rows = rows_of(out.read_text())
    assert [r[column("uniqueid")] for r in rows] == [r.id for r in all_records(store)]
    assert rows[2][column("dst")] == "+4917612345678"  # an export for audits carries the full numbers
    assert daemon.cli("cdr", "export").stdout == out.read_text()
    later = daemon.cli("cdr", "export", "--since", str(2_000_000_000)).stdout
    assert later == ""


def test_cli_purge_removes_only_old_delivered_records(audited: tuple[LifelineProcess, Store]) -> None:
    daemon, store = audited
    assert "purged 1 delivered record(s) older than 30 day(s)" in daemon.cli("cdr", "purge").stdout
    assert [r.disposition.value for r in all_records(store)] == ["busy", "answered"]
    assert "purged 1 " in daemon.cli("cdr", "purge", "--older-than-days", "1").stdout
    assert [r.disposition.value for r in all_records(store)] == ["busy"]  # never delivered: kept
