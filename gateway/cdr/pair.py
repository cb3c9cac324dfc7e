"""A pair's call records: one id per call on both boxes, and a call's start as the other box noted it.

Either box may write a call's record: the one it was answered through, and the one its BYE went
through after a failover (from the start the first one's Kamailio copied to it). Both derive the same
id from the call, so a sink that has one keeps one (webhook: `duplicate`; FusionPBX: a uuid it has).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from gateway.sip.accounting import AccEvent
from gateway.sip.call_starts import CallStart
from gateway.store import Store

_MS_BITS = 48
_NAMESPACE = b"lifeline-cdr\0"  # no other hash of a Call-ID in Lifeline gives these bits


def record_id(call_id: str, from_tag: str, start: float) -> str:
    """The record's id: a UUIDv8 laid out as UUIDv7 (RFC 9562 §5.8, its Appendix B's pattern).

    The top 48 bits are the call's start in Unix milliseconds, as in UUIDv7, so ids sort by when the
    call began; the other 74 are SHA-256 of the Call-ID and From tag, not random, so both boxes of a
    pair get the same id. `start` is Kamailio's own stamp of the INVITE ($avp(cdr_start)), the same
    text on both boxes, never the record's corrected time (which may change after the id is given).
    """
    millis = min(max(int(start * 1000), 0), (1 << _MS_BITS) - 1)
    digest = hashlib.sha256(_NAMESPACE + call_id.encode() + b"\0" + from_tag.encode()).digest()
    bits = int.from_bytes(digest[:10], "big")  # 80 bits; 12 go to rand_a, 62 to rand_b
    rand_a, rand_b = bits >> 68, bits & ((1 << 62) - 1)
    return str(uuid.UUID(int=millis << 80 | 0x8 << 76 | rand_a << 64 | 0b10 << 62 | rand_b))


def start_events(call_id: str, start: CallStart) -> list[AccEvent]:
    """The acc events the answering box wrote for this call before its BYE: its start, then its answer."""
    common: dict[str, Any] = {
        "id": 0,
        "method": "INVITE",
        "from_tag": start.from_tag,
        "to_tag": "",
        "call_id": call_id,
        "sip_reason": "",
        "src_user": start.src_user,
        "dst_user": start.dst_user,
        "start_time": start.start,
        "mode": start.mode,
        "src_name": start.src_name,
        "pai": start.pai,
    }
    # Only the trunk agent's INVITE carries its details at the start (route[CDR_START]); an outbound
    # call's come with the answer, and capture tells the two apart by the event they come with.
    first = AccEvent(sip_code=100, time=start.start, trunk=start.trunk if start.from_trunk else "", **common)
    return [first, AccEvent(sip_code=start.sip_code, time=start.answer, trunk=start.trunk, **common)]


def peer_starts(
    store: Store, rows: Sequence[dict[str, Any]], lookup: Callable[[str], CallStart | None]
) -> dict[str, list[AccEvent]]:
    """For each BYE (acc rows) of a call this box has no record of: the events of its start, if the peer noted one."""
    ended = {str(row["callid"]) for row in rows if row.get("method") == "BYE"}
    if not ended:
        return {}
    marks = ", ".join("?" for _ in ended)
    with store.read() as conn:
        cursor = conn.execute(f"SELECT DISTINCT call_id FROM cdrs WHERE call_id IN ({marks})", sorted(ended))
        known = {row[0] for row in cursor}
    # Kamailio is asked outside any transaction: a slow answer holds up nobody.
    found = {call_id: lookup(call_id) for call_id in sorted(ended - known)}
    return {call_id: start_events(call_id, start) for call_id, start in found.items() if start is not None}
