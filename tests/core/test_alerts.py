from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from gateway.core.alerts import Alert, AlertQueue, WebhookChannel
from gateway.sip.render import free_port
from gateway.store import Store


@dataclass
class Sink:
    url: str
    failures_left: int = 0
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    got: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    port = free_port("127.0.0.1")
    state = Sink(f"http://127.0.0.1:{port}/hooks/lifeline")

    async def hook(request: web.Request) -> web.Response:
        if state.failures_left > 0:
            state.failures_left -= 1
            return web.Response(status=503)
        state.received.append((dict(request.headers), await request.read()))
        state.got.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hooks/lifeline", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield state
    await runner.cleanup()


SECRET_KEY = secrets.token_bytes(24)
SECRET = "whsec_" + base64.b64encode(SECRET_KEY).decode()


def verify(headers: dict[str, str], body: bytes) -> bool:
    """Standard Webhooks verification written from the spec, independent of the signing library."""
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(SECRET_KEY, signed, hashlib.sha256).digest()).decode()
    return any(sig == f"v1,{expected}" for sig in headers["webhook-signature"].split())


async def test_mode_change_alert_is_signed_per_standard_webhooks(sink: Sink, tmp_path: Path) -> None:
    queue = AlertQueue(Store(tmp_path / "l.db"), [WebhookChannel(sink.url, SECRET)], retry_max_s=0.1)
    await queue.raise_alert(Alert.new("mode.changed", {"old": "normal", "new": "survival", "summary": "cut"}))
    assert await queue.deliver_due() == 1
    ((headers, body),) = sink.received
    assert verify(headers, body)
    payload = json.loads(body)
    assert payload["type"] == "mode.changed" and payload["data"]["new"] == "survival"
    assert not verify({**headers, "webhook-timestamp": "1"}, body)


async def test_alerts_wait_out_a_dead_webhook_and_survive_a_restart(sink: Sink, tmp_path: Path) -> None:
    sink.failures_left = 2
    store = Store(tmp_path / "l.db")
    queue = AlertQueue(store, [WebhookChannel(sink.url, SECRET)], retry_max_s=0.05)
    await queue.raise_alert(Alert.new("mode.changed", {"summary": "first"}))
    assert await queue.deliver_due() == 0
    assert store.alert_counts() == {"pending": 1, "delivered": 0}
    # The daemon restarts: a new queue over the same store picks the alert up.
    again = AlertQueue(Store(tmp_path / "l.db"), [WebhookChannel(sink.url, SECRET)], retry_max_s=0.05)
    await again.start()  # the worker retries on its own schedule
    try:
        await asyncio.wait_for(sink.got.wait(), timeout=20)
    finally:
        await again.stop()
    assert len(sink.received) == 1
    assert json.loads(sink.received[0][1])["data"]["summary"] == "first"
    assert again.store.alert_counts() == {"pending": 0, "delivered": 1}


async def test_unreachable_webhook_is_retried_later_not_lost(tmp_path: Path) -> None:
    store = Store(tmp_path / "l.db")
    dead = f"http://127.0.0.1:{free_port('127.0.0.1')}/"
    queue = AlertQueue(store, [WebhookChannel(dead, SECRET, timeout=1)], retry_max_s=60)
    await queue.raise_alert(Alert.new("mode.changed", {"summary": "x"}))
    assert await queue.deliver_due() == 0
    row = store.db.execute("SELECT attempts, last_error, next_at > created FROM alerts").fetchone()
    assert row[0] == 1 and "unreachable" in row[1] and row[2] == 1
