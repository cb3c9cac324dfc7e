"""Emergency call records leave the outbox before all others (the reference webhook receiver, real store)."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from gateway.cdr.labsink import Fault, LabWebhookReceiver, seed_records
from gateway.cdr.outbox import OutboxDb, SinkDelivery
from gateway.cdr.webhook import WebhookSink
from gateway.store import Store
from tests.cdr.helpers import new_secret


async def test_emergency_records_are_delivered_before_older_ones(tmp_path: Path) -> None:
    store = Store(tmp_path / "lifeline.db")
    seed_records(store, 30, ["webhook"])
    with store.write() as conn:  # two of the later calls were emergency calls
        conn.execute("UPDATE cdrs SET direction = 'emergency', to_number = '112' WHERE seq IN (17, 29)")
        emergency = {row[0] for row in conn.execute("SELECT id FROM cdrs WHERE direction = 'emergency'")}
    batches: list[list[str]] = []

    def watch(index: int, ids: list[str]) -> Fault | None:
        batches.append(ids)  # what each push carried, in order
        return None

    receiver = LabWebhookReceiver(new_secret(), policy=watch)
    await receiver.start()
    sink = WebhookSink(receiver.url, receiver.secret, gateway_id="lab", timeout_s=2.0)
    delivery = SinkDelivery(sink, OutboxDb(store), batch_size=8, rng=random.Random(1))
    try:
        async with asyncio.timeout(30):
            await delivery.drain(lambda: True)
    finally:
        await sink.close()
        await receiver.stop()
    assert set(batches[0][:2]) == emergency  # the first two records of the first batch
    delivered = [record_id for batch in batches for record_id in batch]
    with store.read() as conn:
        by_seq = [row[0] for row in conn.execute("SELECT id FROM cdrs WHERE direction != 'emergency' ORDER BY seq")]
    assert delivered[2:] == by_seq  # the others in their own order, each once
    assert OutboxDb(store).counts("webhook") == {"pending": 0, "delivered": 30, "quarantined": 0}
