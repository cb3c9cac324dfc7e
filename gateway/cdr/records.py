"""Call records as Lifeline delivers them: the record type and its enums."""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


class Disposition(enum.StrEnum):
    """How a call ended, from the caller's point of view."""

    ANSWERED = "answered"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"
    REFUSED = "refused"


class Direction(enum.StrEnum):
    """Who called whom: phone to phone, out to the world, in from it."""

    INTERNAL = "internal"
    OUTBOUND = "outbound"
    INBOUND = "inbound"
    EMERGENCY = "emergency"


class ClockKind(enum.StrEnum):
    """Where a record's timestamps came from, best first."""

    NTP = "ntp"
    NETWORK = "network"
    MONOTONIC = "monotonic"
    UNSYNCED = "unsynced"

    @property
    def rank(self) -> int:
        """Lower is better."""
        return list(ClockKind).index(self)


def disposition_for(sip_code: int) -> Disposition:
    """The disposition of a call whose INVITE got this final SIP status."""
    if 200 <= sip_code < 300:
        return Disposition.ANSWERED
    if sip_code in (486, 600):
        return Disposition.BUSY
    if sip_code in (408, 480, 487, 603):
        return Disposition.NO_ANSWER
    if sip_code in (401, 403, 407):
        return Disposition.REFUSED
    return Disposition.FAILED


def iso(ts: float | None) -> str | None:
    """RFC 3339 UTC with milliseconds, or None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class CdrRecord:
    """One call Lifeline carried, as stored and delivered."""

    seq: int
    id: str
    call_id: str
    start_ts: float
    answer_ts: float | None
    end_ts: float | None
    clock_source: ClockKind
    from_number: str
    to_number: str
    from_ext: str | None
    to_ext: str | None
    direction: Direction
    disposition: Disposition
    sip_code: int | None
    hangup_cause: str
    trunk: dict[str, Any] | None
    mode: str

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> CdrRecord:
        """Build from a `cdrs` row; ValueError naming the column on bad data."""
        try:
            return cls(
                seq=int(row["seq"]),
                id=str(row["id"]),
                call_id=str(row["call_id"]),
                start_ts=float(row["start_ts"]),
                answer_ts=None if row["answer_ts"] is None else float(row["answer_ts"]),
                end_ts=None if row["end_ts"] is None else float(row["end_ts"]),
                clock_source=ClockKind(row["clock_source"]),
                from_number=str(row["from_number"]),
                to_number=str(row["to_number"]),
                from_ext=row["from_ext"],
                to_ext=row["to_ext"],
                direction=Direction(row["direction"]),
                disposition=Disposition(row["disposition"]),
                sip_code=None if row["sip_code"] is None else int(row["sip_code"]),
                hangup_cause=str(row["hangup_cause"] or ""),
                trunk=json.loads(row["trunk"]) if row["trunk"] else None,
                mode=str(row["mode"]),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"cdr seq {row.get('seq')}: bad stored record: {err!r}") from err

    @property
    def duration_s(self) -> float:
        """Seconds from the INVITE to the end of the call."""
        return max(0.0, (self.end_ts or self.start_ts) - self.start_ts)

    @property
    def billable_s(self) -> int:
        """Whole seconds from the answer to the end (rounded up, as carriers bill)."""
        if self.answer_ts is None or self.end_ts is None:
            return 0
        return math.ceil(max(0.0, self.end_ts - self.answer_ts) - 1e-6)

    def to_json(self) -> dict[str, Any]:
        """The record in Lifeline's documented webhook format (gateway/cdr/cdr-batch.schema.json)."""
        return {
            "id": self.id,
            "call_id": self.call_id,
            "start": iso(self.start_ts),
            "answer": iso(self.answer_ts),
            "end": iso(self.end_ts),
            "duration_s": round(self.duration_s, 3),
            "billable_s": self.billable_s,
            "from": {"number": self.from_number, "extension": self.from_ext},
            "to": {"number": self.to_number, "extension": self.to_ext},
            "direction": self.direction.value,
            "disposition": self.disposition.value,
            "sip_code": self.sip_code,
            "hangup_cause": self.hangup_cause,
            "trunk": self.trunk,
            "mode": self.mode,
            "clock_source": self.clock_source.value,
        }
