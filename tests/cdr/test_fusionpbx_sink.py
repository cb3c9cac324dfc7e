"""The FusionPBX sink against a stand-in xml_cdr_import.php: FreeSWITCH XML CDRs it can file, each once."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.cdr.fusionpbx import FusionPbxSink, freeswitch_xml
from gateway.cdr.outbox import OutboxDb, SinkDelivery, SinkState
from gateway.cdr.records import CdrRecord
from gateway.store import Store
from tests.cdr.fake_fusionpbx import FakeFusionPbx, parse_cdr
from tests.cdr.helpers import add_record, queue

DOMAIN = "branch.example.com"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "lifeline.db")
    seqs = [
        add_record(s),
        add_record(s, disposition="busy", sip_code=486, answer_ts=None, end_ts=1_764_064_803.0),
        add_record(s, disposition="no_answer", sip_code=487, answer_ts=None, end_ts=1_764_064_820.0),
        add_record(s, to_number="+49301234567", to_ext=None, direction="outbound", from_ext="1001"),
        add_record(s, from_number="+4930999", from_ext=None, direction="inbound", to_ext="1002"),
        add_record(s, disposition="failed", sip_code=404, to_number="nobody", to_ext=None, answer_ts=None),
    ]
    seqs += [add_record(s) for _ in range(6)]
    queue(s, "fusionpbx", seqs)
    return s


@pytest.fixture
async def pbx() -> AsyncIterator[FakeFusionPbx]:
    fake = FakeFusionPbx("cdr", "s3cret-import")
    await fake.start()
    yield fake
    await fake.stop()


def records(store: Store) -> list[CdrRecord]:
    with store.read() as conn:
        cursor = conn.execute("SELECT * FROM cdrs ORDER BY seq")
        names = [d[0] for d in cursor.description]
        return [CdrRecord.from_row(dict(zip(names, r, strict=True))) for r in cursor.fetchall()]


async def deliver(store: Store, pbx: FakeFusionPbx, password: str = "s3cret-import", rounds: int = 1) -> SinkDelivery:
    sink = FusionPbxSink(pbx.url, "cdr", password, domain=DOMAIN, timeout_s=0.5)
    delivery = SinkDelivery(
        sink, OutboxDb(store), batch_size=5, backoff_base_s=0.01, backoff_max_s=0.05, rng=random.Random(3)
    )
    calls = {"n": 0}

    def keep_going() -> bool:
        calls["n"] += 1
        return calls["n"] <= 50

    try:
        async with asyncio.timeout(30):
            for _ in range(rounds):
                await delivery.drain(keep_going)
    finally:
        await sink.close()
    return delivery


async def test_every_record_is_filed_once_with_the_fields_fusionpbx_reads(store: Store, pbx: FakeFusionPbx) -> None:
    await deliver(store, pbx)
    sent = records(store)
    assert set(pbx.records) == {r.id for r in sent}
    assert OutboxDb(store).counts("fusionpbx") == {"pending": 0, "delivered": len(sent), "quarantined": 0}
    by_id = {r.id: r for r in sent}
    answered = pbx.records[sent[0].id]
    assert answered["caller_id_number"] == "1001" and answered["destination_number"] == "1002"
    assert answered["domain_name"] == DOMAIN and answered["call_direction"] == "local"
    assert (answered["start_epoch"], answered["answer_epoch"], answered["end_epoch"]) == (
        "1764064800",
        "1764064804",
        "1764064865",
    )
    assert answered["billsec"] == "61" and answered["billmsec"] == "60700"
    assert answered["duration"] == "65" and answered["mduration"] == "65200"
    assert (answered["hangup_cause"], answered["hangup_cause_q850"]) == ("NORMAL_CLEARING", "16")
    causes = {by_id[i].disposition.value: (f["hangup_cause"], f["billsec"]) for i, f in pbx.records.items()}
    assert causes["busy"] == ("USER_BUSY", "0")
    assert causes["no_answer"] == ("ORIGINATOR_CANCEL", "0")
    assert causes["failed"] == ("UNALLOCATED_NUMBER", "0")
    directions = {by_id[i].direction.value: f["call_direction"] for i, f in pbx.records.items()}
    assert directions == {"internal": "local", "outbound": "outbound", "inbound": "inbound"}
    assert pbx.skipped == 0 and pbx.refused_logins == 0


async def test_a_failure_mid_batch_keeps_what_was_filed_and_the_retry_adds_the_rest(
    store: Store, pbx: FakeFusionPbx
) -> None:
    # Three imports go through, then the importer fails twice: the acked ones stay delivered.
    pbx.script = [None, None, None, 500, 503]
    delivery = await deliver(store, pbx)
    assert len(pbx.records) == len(records(store)) and pbx.skipped == 0
    assert delivery.batches >= 2 and pbx.posts == len(records(store)) + 2


async def test_an_answer_lost_after_the_import_is_retried_and_skipped_by_uuid(store: Store, pbx: FakeFusionPbx) -> None:
    pbx.delay_s = 1.0  # longer than the sink's 0.5 s timeout: filed, but the answer never arrives
    delivery = SinkDelivery(
        FusionPbxSink(pbx.url, "cdr", "s3cret-import", domain=DOMAIN, timeout_s=0.5),
        OutboxDb(store),
        batch_size=5,
        backoff_base_s=0.01,
        backoff_max_s=0.02,
    )
    attempts = {"n": 0}

    def twice() -> bool:
        attempts["n"] += 1
        return attempts["n"] <= 2

    await delivery.drain(twice)
    await delivery.sink.close()
    assert OutboxDb(store).counts("fusionpbx")["delivered"] == 0
    await asyncio.sleep(1.2)  # let the importer finish filing what it was sent
    filed_before = set(pbx.records)
    assert filed_before
    pbx.delay_s = 0.0
    await deliver(store, pbx)
    assert pbx.skipped >= 1  # the retry of a filed record was skipped, not filed twice
    assert set(pbx.records) == {r.id for r in records(store)}


@pytest.mark.parametrize("password", ["wrong"], ids=["401"])
async def test_a_refused_login_marks_nothing_and_shows_in_the_state(
    store: Store, pbx: FakeFusionPbx, password: str
) -> None:
    delivery = await deliver(store, pbx, password=password)
    assert pbx.records == {} and pbx.refused_logins >= 1
    assert delivery.state is SinkState.UNAUTHORIZED and "401" in delivery.last_error
    assert OutboxDb(store).counts("fusionpbx")["pending"] == len(records(store))


def test_the_xml_is_a_freeswitch_cdr_with_url_encoded_variables(store: Store) -> None:
    record = records(store)[3]  # to +49301234567: the "+" must survive URL encoding
    xml_text = freeswitch_xml(record, DOMAIN)
    assert "%2B49301234567" in xml_text
    fields = parse_cdr(xml_text)
    assert fields["uuid"] == record.id and fields["destination_number"] == "+49301234567"
    with pytest.raises(ValueError, match="variables/billsec missing"):
        parse_cdr(xml_text.replace("<billsec>", "<x>").replace("</billsec>", "</x>"))
