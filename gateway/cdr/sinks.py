"""The `CdrSink` seam: where call records go, and what a sink answers for each record."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.cdr.records import CdrRecord
from gateway.errors import LifelineError


class AckStatus(enum.StrEnum):
    """A sink's answer for one record."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"  # the sink already had it: as good as accepted
    REJECTED = "rejected"  # the sink will never take it: quarantined with the reason


@dataclass(frozen=True)
class Ack:
    """The sink's answer for one record id."""

    id: str
    status: AckStatus
    reason: str = ""


class SinkError(LifelineError):
    """The sink could not take the batch now (network, timeout, 5xx, unreadable answer): retry later."""


class SinkAuthError(SinkError):
    """The sink refused our credentials (401/403): retried with backoff, shown in the status."""


class SinkBatchRejectedError(SinkError):
    """The sink refused the batch as a whole (400/413/422): split it to find the record at fault."""


class CdrSink(Protocol):
    """A destination for call records; records missing from the answer are retried later."""

    name: str

    async def push(self, batch: Sequence[CdrRecord], idempotency_key: str) -> list[Ack]:
        """Deliver the batch; per-record acks; SinkError when nothing can be said about any record."""

    async def close(self) -> None:
        """Release connections."""


def idempotency_key(sink: str, ids: Sequence[str]) -> str:
    """The same batch (same sink, same records in the same order) always gets the same key."""
    digest = hashlib.sha256(sink.encode())
    for record_id in ids:
        digest.update(b"\0" + record_id.encode())
    return digest.hexdigest()[:32]
