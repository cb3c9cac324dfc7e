"""What a drill looks at: whether Kamailio follows the mode, its registrations, the store's extensions and records."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from gateway.cdr import repository as cdr_records
from gateway.core.mode import Mode
from gateway.drill.host import DrillHost
from gateway.drill.runner import DrillError
from gateway.errors import RpcError
from gateway.mirror import repository as directory
from gateway.sip.supervisor import KamailioSupervisor
from gateway.store import Store

POLL_S = 0.05


async def wait_serving(host: DrillHost, want: Mode, timeout_s: float) -> bool:
    """Whether the mode became want and Kamailio follows it (serving locally or relaying) within timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        if host.mode.mode is want and await kamailio_local(host.kamailio) == want.serves_locally:
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(POLL_S)


async def kamailio_local(kamailio: KamailioSupervisor | None) -> bool | None:
    """Whether Kamailio serves phones locally now; None if it does not answer."""
    if kamailio is None:
        return None
    return await kamailio.serving_locally()


async def registered(kamailio: KamailioSupervisor | None) -> set[str]:
    """The extensions with a live binding in Kamailio's location table."""
    if kamailio is None:
        raise DrillError("Kamailio is not running")
    try:
        return {binding.aor for binding in await kamailio.bindings()}
    except RpcError as err:
        raise DrillError(f"cannot read Kamailio's registrations: {err}") from err


def extensions(store: Store, numbers: list[str]) -> dict[str, dict[str, Any]]:
    """The test extensions with their digests (worker thread)."""
    with store.read() as conn:
        return directory.digests(conn, numbers)


def records(store: Store, call_ids: list[str]) -> list[dict[str, Any]]:
    """The records of these calls, each with its delivery state per sink (worker thread)."""
    with store.read() as conn:
        return cdr_records.of_calls(conn, call_ids)


def backlog(store: Store) -> int:
    """Call records not yet delivered to every sink (worker thread)."""
    with store.read() as conn:
        return cdr_records.backlog(conn)
