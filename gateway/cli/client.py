"""The CLI's client for the daemon's API on its unix socket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from gateway.errors import DaemonUnreachableError

TIMEOUT = aiohttp.ClientTimeout(total=10)


async def request(
    socket: Path, method: str, path: str, body: dict[str, Any] | None = None, limit_s: float | None = None
) -> Any:
    """One API call; DaemonUnreachableError when no daemon listens on the socket."""
    limit = TIMEOUT if limit_s is None else aiohttp.ClientTimeout(total=limit_s)
    try:
        async with (
            aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(socket)), timeout=limit) as session,
            session.request(method, f"http://lifeline{path}", json=body) as response,
        ):
            data = await response.json()
            if response.status >= 400:
                raise DaemonUnreachableError(f"the daemon refused: {data.get('error', response.status)}")
            return data
    except (aiohttp.ClientError, TimeoutError) as err:
        raise DaemonUnreachableError(f"cannot reach the daemon at {socket}: {err}") from err
