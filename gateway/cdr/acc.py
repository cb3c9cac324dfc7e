"""What capture reads off an acc event beyond its row: the trunk's outside caller and the agent's details."""

from __future__ import annotations

import re

import structlog

from gateway.cdr import trunkinfo
from gateway.sip.accounting import AccEvent, acc_path

__all__ = ["AccEvent", "acc_path", "trunk_caller", "trunk_details"]

log = structlog.get_logger("cdr.capture")


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
