"""The outbox: per sink, deliver pending records (emergency calls first), in batches; mark only what the sink acked.

Retries use a tiny explicit schedule (`gateway.backoff.full_jitter`) rather than a
retry library: the loop is a long-lived per-sink state machine whose attempt count must survive
between drains and show in the status, which decorator-style retry libraries (tenacity, backoff)
do not model.
"""

from __future__ import annotations

import asyncio
import enum
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from gateway.backoff import full_jitter
from gateway.cdr.records import CdrRecord
from gateway.cdr.sinks import AckStatus, CdrSink, SinkAuthError, SinkBatchRejectedError, SinkError, idempotency_key
from gateway.store import Store

log = structlog.get_logger("cdr.outbox")


class SinkState(enum.StrEnum):
    """What a sink's delivery is doing."""

    IDLE = "idle"
    SENDING = "sending"
    BACKOFF = "backoff"
    UNAUTHORIZED = "unauthorized"


@dataclass
class Pending:
    """A batch read from the outbox: good records, and rows that cannot even be read (poison)."""

    records: list[CdrRecord] = field(default_factory=list)
    unreadable: list[tuple[int, str]] = field(default_factory=list)


class OutboxDb:
    """The outbox rows of the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def pending(self, sink: str, limit: int) -> Pending:
        """The pending records of this sink in delivery order: emergency calls first, then the oldest."""
        with self.store.read() as conn:
            # After an outage the emergency calls are what the cloud's operators look for first; and
            # a backlog cut short (the WAN gone again) has them delivered already.
            cursor = conn.execute(
                "SELECT c.* FROM cdr_outbox o JOIN cdrs c ON c.seq = o.cdr_seq"
                " WHERE o.sink = ? AND o.state = 'pending'"
                " ORDER BY c.direction = 'emergency' DESC, o.cdr_seq LIMIT ?",
                [sink, limit],
            )
            names = [d[0] for d in cursor.description]
            rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
        batch = Pending()
        for row in rows:
            try:
                batch.records.append(CdrRecord.from_row(row))
            except ValueError as err:
                batch.unreadable.append((int(row["seq"]), str(err)))
        return batch

    def settle(self, sink: str, delivered: list[int], quarantined: list[tuple[int, str]], tried: list[int]) -> None:
        """Record the outcome of one push in one transaction."""
        now = time.time()
        with self.store.write() as conn:
            conn.executemany(
                "UPDATE cdr_outbox SET state = 'delivered', attempts = attempts + 1, last_error = NULL, updated_at = ?"
                " WHERE sink = ? AND cdr_seq = ?",
                [(now, sink, seq) for seq in delivered],
            )
            conn.executemany(
                "UPDATE cdr_outbox SET state = 'quarantined', attempts = attempts + 1, last_error = ?, updated_at = ?"
                " WHERE sink = ? AND cdr_seq = ?",
                [(reason, now, sink, seq) for seq, reason in quarantined],
            )
            conn.executemany(
                "UPDATE cdr_outbox SET attempts = attempts + 1, updated_at = ? WHERE sink = ? AND cdr_seq = ?",
                [(now, sink, seq) for seq in tried],
            )

    def counts(self, sink: str) -> dict[str, int]:
        """pending / delivered / quarantined for one sink."""
        with self.store.read() as conn:
            rows = conn.execute(
                "SELECT state, COUNT(*) FROM cdr_outbox WHERE sink = ? GROUP BY state", [sink]
            ).fetchall()
        counts = {"pending": 0, "delivered": 0, "quarantined": 0}
        counts.update({str(state): int(n) for state, n in rows})
        return counts


class SinkDelivery:
    """Drains one sink's outbox: batches in order, per-record acks, backoff with jitter, poison quarantined."""

    def __init__(
        self,
        sink: CdrSink,
        db: OutboxDb,
        *,
        batch_size: int,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 300.0,
        push_timeout_s: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self.sink = sink
        self.db = db
        self.batch_size = batch_size
        self._limit = batch_size
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.push_timeout_s = push_timeout_s
        self._rng = rng or random.Random()
        self.state = SinkState.IDLE
        self.failures = 0
        self.last_error = ""
        self.delivered = 0
        self.quarantined = 0
        self.batches = 0

    def _set_state(self, new: SinkState, reason: str) -> None:
        old, self.state = self.state, new
        if old != new:
            log.info("sink state", sink=self.sink.name, old=old.value, new=new.value, reason=reason)

    async def drain(self, keep_going: Callable[[], bool]) -> None:
        """Deliver until the outbox of this sink is empty or keep_going() turns false."""
        while keep_going():
            batch = await asyncio.to_thread(self.db.pending, self.sink.name, self._limit)
            if batch.unreadable:
                await asyncio.to_thread(self.db.settle, self.sink.name, [], batch.unreadable, [])
                self.quarantined += len(batch.unreadable)
                for seq, reason in batch.unreadable:
                    log.warning("record quarantined", sink=self.sink.name, seq=seq, reason=reason)
                continue
            if not batch.records:
                self._set_state(SinkState.IDLE, "outbox empty")
                return
            if not await self._push(batch.records):
                delay = full_jitter(self.failures, self.backoff_base_s, self.backoff_max_s, self._rng)
                if self.state is not SinkState.UNAUTHORIZED:
                    self._set_state(SinkState.BACKOFF, f"{self.last_error}; retry in {delay:.1f} s")
                await asyncio.sleep(delay)

    async def _push(self, records: list[CdrRecord]) -> bool:
        """One attempt; True when it made progress."""
        self._set_state(SinkState.SENDING, f"{len(records)} record(s)")
        by_id = {r.id: r.seq for r in records}
        key = idempotency_key(self.sink.name, list(by_id))
        try:
            async with asyncio.timeout(self.push_timeout_s):
                acks = await self.sink.push(records, key)
        except SinkBatchRejectedError as err:
            if len(records) > 1:
                # Halve until the record at fault stands alone; the others go through meanwhile.
                self._limit = max(1, len(records) // 2)
                return True
            await asyncio.to_thread(self.db.settle, self.sink.name, [], [(records[0].seq, str(err))], [])
            self.quarantined += 1
            log.warning("record quarantined", sink=self.sink.name, id=records[0].id, reason=str(err))
            self._limit = self.batch_size
            return True
        except SinkAuthError as err:
            return self._failed(str(err), SinkState.UNAUTHORIZED)
        except (SinkError, TimeoutError) as err:
            return self._failed(str(err) or "push timed out")
        delivered = [by_id[a.id] for a in acks if a.status in (AckStatus.ACCEPTED, AckStatus.DUPLICATE)]
        rejected = [(by_id[a.id], a.reason or "rejected by the sink") for a in acks if a.status is AckStatus.REJECTED]
        answered = {a.id for a in acks}
        tried = [seq for rid, seq in by_id.items() if rid not in answered]
        await asyncio.to_thread(self.db.settle, self.sink.name, delivered, rejected, tried)
        self.batches += 1
        self.delivered += len(delivered)
        self.quarantined += len(rejected)
        for seq, reason in rejected:
            log.warning("record quarantined", sink=self.sink.name, seq=seq, reason=reason)
        if not delivered and not rejected:
            return self._failed("the sink acknowledged none of the batch")
        if self._limit < self.batch_size:
            self._limit = min(self.batch_size, self._limit * 2)
        self.failures = 0
        self.last_error = ""
        return True

    def _failed(self, error: str, state: SinkState = SinkState.BACKOFF) -> bool:
        self.failures += 1
        self.last_error = error
        log.warning("delivery failed", sink=self.sink.name, error=error, failures=self.failures)
        if state is SinkState.UNAUTHORIZED:
            self._set_state(state, error)
        return False

    def status(self) -> dict[str, Any]:
        """State, counters and the last error."""
        return {
            "state": self.state.value,
            "failures": self.failures,
            "last_error": self.last_error,
            "delivered_here": self.delivered,
            "quarantined_here": self.quarantined,
            "batches": self.batches,
        }
