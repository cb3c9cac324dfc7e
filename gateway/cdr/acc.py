"""Kamailio's acc events as capture reads them: the row, the trunk agent's details on it, and where they are."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from gateway.cdr import trunkinfo

log = structlog.get_logger("cdr.capture")


@dataclass(frozen=True)
class AccEvent:
    """One row Kamailio's acc module wrote."""

    id: int
    method: str
    from_tag: str
    to_tag: str
    call_id: str
    sip_code: int
    sip_reason: str
    time: float
    src_user: str
    dst_user: str
    start_time: float | None
    mode: str
    src_name: str = ""  # the From display name
    pai: str = ""  # the P-Asserted-Identity URI
    trunk: str = ""  # the trunk agent's X-Lifeline-Trunk header (trunkinfo.py), on its INVITE or final answer

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> AccEvent:
        """Parse an acc row; ValueError naming the column on bad data."""
        try:
            start = row.get("start_time")
            return cls(
                id=int(row["id"]),
                method=str(row["method"]),
                from_tag=str(row["from_tag"] or ""),
                to_tag=str(row["to_tag"] or ""),
                call_id=str(row["callid"]),
                sip_code=int(row["sip_code"]),
                sip_reason=str(row["sip_reason"] or ""),
                time=float(row["time_attr"]),
                src_user=str(row.get("src_user") or ""),
                dst_user=str(row.get("dst_user") or ""),
                start_time=float(start) if start not in (None, "") else None,
                mode=str(row.get("cdr_mode") or "survival"),
                src_name=str(row.get("src_name") or ""),
                pai=str(row.get("pai") or ""),
                trunk=str(row.get("trunk") or ""),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"acc row {row.get('id')}: {err!r}") from err


def trunk_caller(event: AccEvent) -> str:
    """The outside caller of a call the trunk agent brings in: P-Asserted-Identity, else the display name."""
    match = re.match(r"^<?(?:tel|sips?):([^@;>]+)", event.pai.strip())
    if match:
        return match.group(1)
    name = event.src_name.strip().strip('"').strip()
    return name or "anonymous"


def trunk_details(event: AccEvent) -> dict[str, str] | None:
    """The trunk agent's details of this call, if the event carries them (a bad header is logged, not fatal)."""
    if not event.trunk:
        return None
    try:
        return trunkinfo.decode(event.trunk)
    except ValueError as err:
        log.warning("trunk details ignored", call_id=event.call_id, error=str(err))
        return None


def acc_path(db_path: Path) -> Path:
    """Where Kamailio writes its accounting events, beside the store."""
    return db_path.with_name(db_path.name + ".acc")
