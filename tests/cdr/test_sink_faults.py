"""Delivery against a real aiohttp sink that misbehaves: every record ends up there once, in order, or quarantined."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.cdr.labsink import Fault, FaultPolicy, LabWebhookReceiver, seed_records
from gateway.cdr.outbox import OutboxDb, SinkDelivery, SinkState
from gateway.cdr.webhook import WebhookSink, parse_acks
from gateway.store import Store
from tests.cdr.helpers import new_secret

COUNT = 40


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "lifeline.db")
    seed_records(s, COUNT, ["webhook"])
    return s


@pytest.fixture
async def receiver() -> AsyncIterator[LabWebhookReceiver]:
    r = LabWebhookReceiver(new_secret())
    await r.start()
    yield r
    await r.stop()


async def deliver(store: Store, receiver: LabWebhookReceiver, policy: FaultPolicy | None, **kw: object) -> SinkDelivery:
    receiver.policy = policy
    secret = kw.pop("secret", receiver.secret)
    sink = WebhookSink(receiver.url, str(secret), gateway_id="lab", timeout_s=float(kw.pop("timeout_s", 2.0)))  # type: ignore[arg-type]
    delivery = SinkDelivery(
        sink, OutboxDb(store), batch_size=10, backoff_base_s=0.01, backoff_max_s=0.05, rng=random.Random(1)
    )
    rounds = int(kw.pop("rounds", 1))
    try:
        async with asyncio.timeout(30):
            for _ in range(rounds):
                await delivery.drain(lambda: True)
    finally:
        await sink.close()
    return delivery


def outbox(store: Store) -> dict[str, int]:
    return OutboxDb(store).counts("webhook")


def first_n_fail(n: int, fault: Fault) -> FaultPolicy:
    return lambda index, ids: fault if index < n else None


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=500),
        Fault(status=503),
        Fault(delay_s=1.0),  # longer than the sender's 0.5 s timeout
        Fault(body=b"<html>gateway error</html>"),
        Fault(body=b'{"results": [{"id": 1, "status": "maybe"}]}'),
        Fault(status=401),
    ],
    ids=["500", "503", "timeout", "garbage", "bad-ack", "401"],
)
async def test_transient_faults_are_retried_until_every_record_is_held_once(
    store: Store, receiver: LabWebhookReceiver, fault: Fault
) -> None:
    delivery = await deliver(store, receiver, first_n_fail(3, fault), timeout_s=0.5)
    assert len(receiver.records) == COUNT
    if fault.delay_s:
        # The sink kept what it answered too late; the retry is acked `duplicate`, held once.
        assert receiver.receipts >= COUNT
    else:
        assert receiver.receipts == COUNT  # nothing was kept from the failed attempts
    assert outbox(store) == {"pending": 0, "delivered": COUNT, "quarantined": 0}
    assert delivery.state is SinkState.IDLE
    # Stable order: the sink received the records in the order they were captured.
    assert list(receiver.records) == [r["id"] for r in sorted(receiver.records.values(), key=lambda r: r["start"])]


async def test_partial_acks_leave_the_rest_pending_and_a_retry_completes_the_batch(
    store: Store, receiver: LabWebhookReceiver
) -> None:
    # Every batch is half accepted the first time; the other half comes again with a new key.
    seen: set[str] = set()

    def half(index: int, ids: list[str]) -> Fault | None:
        fresh = [i for i in ids if i not in seen]
        seen.update(ids)
        return Fault(accept_first=len(ids) // 2) if fresh == ids and len(ids) > 1 else None

    await deliver(store, receiver, half)
    assert len(receiver.records) == COUNT and receiver.receipts == COUNT
    assert outbox(store)["delivered"] == COUNT
    assert len(set(receiver.keys)) == len(receiver.keys)  # a different batch, a different key


async def test_a_batch_kept_but_not_acked_is_resent_with_the_same_key_and_counted_once(
    store: Store, receiver: LabWebhookReceiver
) -> None:
    # The sink stores the batch but the answer is lost (slow answer past the timeout).
    calls = {"n": 0}

    def slow_first(index: int, ids: list[str]) -> Fault | None:
        calls["n"] += 1
        return Fault(delay_s=1.0) if index == 0 else None

    await deliver(store, receiver, slow_first, timeout_s=0.5)
    assert len(receiver.records) == COUNT
    assert receiver.keys[0] == receiver.keys[1]  # same batch, same Idempotency-Key
    assert outbox(store)["delivered"] == COUNT


async def test_poison_records_are_quarantined_with_the_reason_and_do_not_block_the_rest(
    store: Store, receiver: LabWebhookReceiver
) -> None:
    with store.read() as conn:
        poison = {r[0] for r in conn.execute("SELECT id FROM cdrs WHERE seq IN (3, 17)")}
    delivery = await deliver(store, receiver, lambda index, ids: Fault(reject=frozenset(poison)))
    assert set(receiver.records) & poison == set()
    assert len(receiver.records) == COUNT - 2
    assert outbox(store) == {"pending": 0, "delivered": COUNT - 2, "quarantined": 2}
    with store.read() as conn:
        reasons = {r[0] for r in conn.execute("SELECT last_error FROM cdr_outbox WHERE state = 'quarantined'")}
    assert reasons == {"injected rejection"}
    assert delivery.quarantined == 2


async def test_a_record_the_sink_refuses_as_a_batch_is_isolated_by_halving(
    store: Store, receiver: LabWebhookReceiver
) -> None:
    with store.read() as conn:
        bad = conn.execute("SELECT id FROM cdrs WHERE seq = 7").fetchone()[0]
    await deliver(store, receiver, lambda index, ids: Fault(status=422) if bad in ids else None)
    assert len(receiver.records) == COUNT - 1
    assert outbox(store) == {"pending": 0, "delivered": COUNT - 1, "quarantined": 1}


async def test_wrong_secret_is_401_and_nothing_is_marked(store: Store, receiver: LabWebhookReceiver) -> None:
    sink = WebhookSink(receiver.url, new_secret(), gateway_id="lab", timeout_s=2)
    delivery = SinkDelivery(sink, OutboxDb(store), batch_size=10, backoff_base_s=0.01, backoff_max_s=0.02)
    attempts = {"n": 0}

    def keep_going() -> bool:
        attempts["n"] += 1
        return attempts["n"] <= 3

    try:
        await delivery.drain(keep_going)
    finally:
        await sink.close()
    assert receiver.bad_signatures == 3 and receiver.records == {}
    assert delivery.state is SinkState.UNAUTHORIZED and "401" in delivery.last_error
    assert outbox(store)["pending"] == COUNT


def test_acks_are_parsed_strictly() -> None:
    with pytest.raises(ValueError, match=r"ack results\[0\]\.status = 'ok': expected one of accepted, duplicate"):
        parse_acks(b'{"results": [{"id": "a", "status": "ok"}]}', ["a"])
    with pytest.raises(ValueError, match="ack is not JSON"):
        parse_acks(b"nope", ["a"])
    assert parse_acks(b'{"results": [{"id": "zzz", "status": "accepted"}]}', ["a"]) == []
