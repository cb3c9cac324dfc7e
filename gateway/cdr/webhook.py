"""Lifeline's own CDR webhook: JSON batches, Standard Webhooks signatures, Idempotency-Key, per-record acks."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp
from standardwebhooks.webhooks import Webhook

from gateway import __version__
from gateway.cdr.records import CdrRecord
from gateway.cdr.sinks import Ack, AckStatus, SinkAuthError, SinkBatchRejectedError, SinkError

EVENT_TYPE = "lifeline.cdr.batch"


def batch_body(gateway_id: str, records: Sequence[CdrRecord]) -> str:
    """The JSON body of one batch (documented in gateway/cdr/cdr-batch.schema.json)."""
    payload = {"type": EVENT_TYPE, "gateway": gateway_id, "records": [r.to_json() for r in records]}
    return json.dumps(payload, separators=(",", ":"))


def parse_acks(body: bytes, ids: Sequence[str]) -> list[Ack]:
    """The sink's answer `{"results": [{"id", "status", "reason"?}]}`; ValueError with an exact message."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"ack is not JSON: {err}") from err
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise ValueError("ack: expected an object with a 'results' list")
    wanted = set(ids)
    acks = []
    for index, item in enumerate(data["results"]):
        if not isinstance(item, dict):
            raise ValueError(f"ack results[{index}]: expected an object")
        record_id, status = item.get("id"), item.get("status")
        if not isinstance(record_id, str):
            raise ValueError(f"ack results[{index}].id: expected a string")
        try:
            parsed = AckStatus(str(status))
        except ValueError as err:
            allowed = ", ".join(s.value for s in AckStatus)
            raise ValueError(f"ack results[{index}].status = {status!r}: expected one of {allowed}") from err
        if record_id in wanted:  # an id we did not send is ignored, never marked
            acks.append(Ack(record_id, parsed, str(item.get("reason") or "")))
    return acks


class WebhookSink:
    """POSTs batches to a URL; signs them; reads per-record acks."""

    def __init__(
        self, url: str, secret: str, *, gateway_id: str, timeout_s: float = 10.0, name: str = "webhook"
    ) -> None:
        self.name = name
        self.url = url
        self.gateway_id = gateway_id
        self.timeout_s = timeout_s
        self._signer = Webhook(secret)
        self._session: aiohttp.ClientSession | None = None

    def _headers(self, key: str, body: str) -> dict[str, str]:
        now = datetime.now(UTC)
        return {
            "content-type": "application/json",
            "user-agent": f"lifeline/{__version__}",
            "webhook-id": key,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self._signer.sign(key, now, body),
            # IETF httpapi Idempotency-Key: a structured-field string, hence the quotes.
            "idempotency-key": f'"{key}"',
        }

    async def push(self, batch: Sequence[CdrRecord], idempotency_key: str) -> list[Ack]:
        """POST the batch; acks from the answer."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        body = batch_body(self.gateway_id, batch)
        try:
            async with self._session.post(self.url, data=body, headers=self._headers(idempotency_key, body)) as resp:
                answer = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as err:
            raise SinkError(f"{self.name}: {type(err).__name__}: {err}") from err
        text = answer[:200].decode(errors="replace")
        if status in (401, 403):
            raise SinkAuthError(f"{self.name}: HTTP {status}: {text}")
        if status in (400, 413, 422):
            raise SinkBatchRejectedError(f"{self.name}: HTTP {status}: {text}")
        if status // 100 != 2:
            raise SinkError(f"{self.name}: HTTP {status}: {text}")
        try:
            return parse_acks(answer, [r.id for r in batch])
        except ValueError as err:
            raise SinkError(f"{self.name}: {err}") from err

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def describe(self) -> dict[str, Any]:
        """For the status: where it posts (no secret)."""
        return {"kind": "webhook", "url": self.url}
