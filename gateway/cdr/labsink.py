"""A reference receiver of Lifeline's CDR webhook (aiohttp), for tests, benchmarks and vendors to copy.

It verifies the Standard Webhooks signature, keeps each record once by id (a repeat is acked
`duplicate`), and can be told to misbehave (`Fault`) to prove the sender's retries.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass(frozen=True)
class Fault:
    """How to answer one request instead of normally."""

    status: int | None = None  # answer this HTTP status, keep nothing
    delay_s: float = 0.0  # answer late (or not at all within the sender's timeout)
    body: bytes | None = None  # answer 200 with this body, keep nothing (garbage acks)
    accept_first: int | None = None  # keep and ack only the first n records
    reject: frozenset[str] = frozenset()  # ack these ids as rejected


FaultPolicy = Callable[[int, list[str]], Fault | None]


@dataclass
class LabWebhookReceiver:
    """The receiving end of the CDR webhook on 127.0.0.1."""

    secret: str
    host: str = "127.0.0.1"
    port: int = 0
    policy: FaultPolicy | None = None
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: int = 0
    receipts: int = 0
    bad_signatures: int = 0
    keys: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._verifier = Webhook(self.secret)
        self._runner: web.AppRunner | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """Where the sender posts."""
        return f"http://{self.host}:{self.port}/cdr"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            self._verifier.verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.bad_signatures += 1
            return web.json_response({"error": "bad signature"}, status=401)
        payload = json.loads(body)
        ids = [r["id"] for r in payload["records"]]
        with self._lock:
            index = self.requests
            self.requests += 1
            self.keys.append(request.headers.get("Idempotency-Key", ""))
        fault = self.policy(index, ids) if self.policy else None
        if fault is not None and fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if fault is not None and fault.status is not None:
            return web.Response(status=fault.status, text="injected fault")
        if fault is not None and fault.body is not None:
            return web.Response(status=200, body=fault.body, content_type="application/json")
        records = payload["records"]
        if fault is not None and fault.accept_first is not None:
            records = records[: fault.accept_first]
        results = []
        with self._lock:
            for record in records:
                if fault is not None and record["id"] in fault.reject:
                    results.append({"id": record["id"], "status": "rejected", "reason": "injected rejection"})
                    continue
                self.receipts += 1
                status = "duplicate" if record["id"] in self.records else "accepted"
                self.records.setdefault(record["id"], record)
                results.append({"id": record["id"], "status": status})
        return web.json_response({"results": results})

    async def start(self) -> None:
        """Listen."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/cdr", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        assert self._runner.addresses, "the sink did not bind"
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()


class ThreadedReceiver:
    """Runs a LabWebhookReceiver on its own event loop thread, for synchronous tests (pjsua2 phones)."""

    def __init__(self, receiver: LabWebhookReceiver) -> None:
        self.receiver = receiver
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="cdr-lab-sink", daemon=True)

    def __enter__(self) -> LabWebhookReceiver:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.receiver.start(), self._loop).result(10)
        return self.receiver

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.receiver.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def seed_records(store: Any, count: int, sinks: list[str], start_ts: float = 1_764_000_000.0) -> None:
    """Put `count` final answered records in the store's outbox for these sinks (tests and the benchmark)."""
    import uuid6

    rows = []
    for n in range(count):
        ts = start_ts + n
        rows.append(
            (str(uuid6.uuid7()), f"seed-{n}@lab", "t", "final", ts, ts + 2, ts + 30, "ntp", "1001", "1002",
             "1001", "1002", "internal", "answered", 200, "caller hung up", "survival", ts + 30)
        )  # fmt: skip
    with store.write() as conn:
        first = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM cdrs").fetchone()[0]
        conn.executemany(
            "INSERT INTO cdrs (id, call_id, from_tag, state, start_ts, answer_ts, end_ts, clock_source, from_number,"
            " to_number, from_ext, to_ext, direction, disposition, sip_code, hangup_cause, mode, final_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.executemany(
            "INSERT INTO cdr_outbox (sink, cdr_seq, state) SELECT ?, seq, 'pending' FROM cdrs WHERE seq > ?",
            [(sink, first) for sink in sinks],
        )
