"""Alerts: every failover and failback announced through channels (a signed webhook; SMS via the trunk).

Alerts are written to the store first and delivered by a worker that retries with backoff, so an
alert raised while the WAN is down leaves as soon as the WAN is back, and survives a restart.
Emergency alerts are urgent: they leave at once, ahead of older alerts and beside any attempt under
way, and a channel still waiting out its backoff for an older alert does not hold them back.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import secrets
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import structlog
from standardwebhooks.webhooks import Webhook

from gateway.backoff import full_jitter
from gateway.errors import LifelineError
from gateway.store import Store

log = structlog.get_logger("alerts")

URGENT_PREFIX = "emergency."  # alert types that jump the queue
URGENT_RETRY_MAX_S = 10.0  # an emergency alert is retried often: it is worth nothing an hour late
RETRY_BASE_S = 1.0  # the first retry within a second, then doubling up to the cap


class AlertDeliveryError(LifelineError):
    """A channel could not deliver an alert this time."""


@dataclass(frozen=True)
class Alert:
    """One thing administrators must hear about."""

    id: str
    type: str
    data: dict[str, Any]
    created: float

    @classmethod
    def new(cls, type_: str, data: dict[str, Any]) -> Alert:
        """A fresh alert with a unique id."""
        return cls(f"msg_{secrets.token_hex(12)}", type_, data, time.time())

    def payload(self) -> dict[str, Any]:
        """The JSON body (Standard Webhooks shape: type, timestamp, data)."""
        stamp = dt.datetime.fromtimestamp(self.created, dt.UTC).isoformat().replace("+00:00", "Z")
        return {"type": self.type, "timestamp": stamp, "data": self.data}

    def text(self) -> str:
        """A one-line human form, for SMS."""
        return str(self.data.get("summary") or self.type)

    @property
    def urgent(self) -> bool:
        """Whether it jumps the queue (an emergency call)."""
        return self.type.startswith(URGENT_PREFIX)


class AlertChannel(Protocol):
    """A way to reach administrators (webhook here; SMS from the trunk)."""

    name: str

    async def send(self, alert: Alert) -> None:
        """Deliver or raise AlertDeliveryError."""


class WebhookChannel:
    """POST to a URL, signed per Standard Webhooks (HMAC-SHA256 over "id.timestamp.body")."""

    name = "webhook"

    def __init__(self, url: str, secret: str, timeout: float = 5.0, ca_file: Path | None = None) -> None:
        self.url = url
        self._signer = Webhook(secret)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._ssl: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True

    async def send(self, alert: Alert) -> None:
        """Deliver one alert; any 2xx is an acknowledgement."""
        body = json.dumps(alert.payload(), separators=(",", ":"))
        now = dt.datetime.now(dt.UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": alert.id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self._signer.sign(alert.id, now, body),
        }
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as session,
                session.post(self.url, data=body.encode(), headers=headers, ssl=self._ssl) as response,
            ):
                if not 200 <= response.status < 300:
                    raise AlertDeliveryError(f"webhook answered HTTP {response.status}")
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise AlertDeliveryError(f"webhook unreachable: {type(err).__name__}: {err}") from err


class AlertQueue:
    """The persisted outbox of alerts and the worker that delivers it."""

    def __init__(self, store: Store, channels: list[AlertChannel], retry_max_s: float) -> None:
        self.store = store
        self.channels = {c.name: c for c in channels}
        self.retry_max_s = retry_max_s
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[int] = set()  # alert rows being sent: an urgent pass and the worker never both send one
        self._urgent: set[asyncio.Task[int]] = set()

    async def raise_alert(self, alert: Alert) -> None:
        """Persist the alert for every channel and wake the worker (an urgent one is also sent right away)."""
        if not self.channels:
            return
        await asyncio.to_thread(self.store.queue_alert, alert.id, list(self.channels), alert.payload())
        self._wake.set()
        if alert.urgent and not self._stopping:
            # Beside the worker, which may be waiting on a slow webhook for an older alert.
            task = asyncio.create_task(self.deliver_due(urgent_only=True), name="alerts-urgent")
            self._urgent.add(task)
            task.add_done_callback(self._urgent.discard)

    async def start(self) -> None:
        """Start delivering (including what an earlier run left undelivered)."""
        if self.channels:
            self._task = asyncio.create_task(self._run(), name="alerts")

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop delivering, letting an attempt under way finish; what is undelivered stays queued."""
        self._stopping = True
        if self._urgent:
            await asyncio.wait(set(self._urgent), timeout=grace_s)
        if self._task is None:
            return
        self._wake.set()
        try:
            async with asyncio.timeout(grace_s):
                await asyncio.shield(self._task)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def status(self) -> dict[str, Any]:
        """Channels and queue counts."""
        return {"channels": sorted(self.channels), **self.store.alert_counts()}

    async def _run(self) -> None:
        while not self._stopping:
            await self.deliver_due()
            if self._stopping:
                return
            due = await asyncio.to_thread(self.store.next_alert_due)
            timeout = None if due is None else max(0.05, due - time.time())
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def deliver_due(self, urgent_only: bool = False) -> int:
        """Deliver each channel's due alerts, urgent first, the others in order; returns how many went out."""
        rows = await asyncio.to_thread(self.store.pending_alerts)
        by_channel: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            if row["channel"] in self.channels and row["id"] not in self._inflight:
                by_channel.setdefault(row["channel"], []).append(row)
        # Channels side by side: a webhook timing out must not hold back the SMS of an emergency.
        counts = await asyncio.gather(
            *(self._deliver_channel(self.channels[name], queued, urgent_only) for name, queued in by_channel.items())
        )
        return sum(counts)

    async def _deliver_channel(self, channel: AlertChannel, rows: list[dict[str, Any]], urgent_only: bool) -> int:
        delivered = 0
        for row in sorted(rows, key=lambda r: not _is_urgent(r)):  # stable: the others keep their order
            urgent = _is_urgent(row)
            if self._stopping or (urgent_only and not urgent):
                break
            # In order per channel: a later alert never overtakes one still waiting for a retry
            # (urgent ones come first and each keeps its own schedule).
            if row["next_at"] > time.time() or row["id"] in self._inflight:
                if urgent:
                    continue
                break
            payload = row["payload"]
            alert = Alert(row["alert_id"], payload["type"], payload["data"], row["created"])
            self._inflight.add(row["id"])
            try:
                await channel.send(alert)
            except AlertDeliveryError as err:
                cap = min(self.retry_max_s, URGENT_RETRY_MAX_S) if urgent else self.retry_max_s
                delay = full_jitter(row["attempts"] + 1, RETRY_BASE_S, cap)
                log.warning(
                    "alert not delivered", channel=channel.name, id=alert.id, error=str(err), retry_s=round(delay, 1)
                )
                await asyncio.to_thread(self.store.alert_failed, row["id"], str(err), time.time() + delay)
                if urgent:
                    self._wake.set()  # the worker's next wake-up must not miss this retry
                    continue
                break
            finally:
                self._inflight.discard(row["id"])
            await asyncio.to_thread(self.store.alert_delivered, row["id"])
            log.info("alert delivered", channel=channel.name, id=alert.id, type=alert.type)
            delivered += 1
        return delivered


def _is_urgent(row: dict[str, Any]) -> bool:
    return str(row["payload"].get("type", "")).startswith(URGENT_PREFIX)
