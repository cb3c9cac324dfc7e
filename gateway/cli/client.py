"""The CLI's client for the daemon's API on its unix socket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from gateway.errors import DaemonUnreachable

TIMEOUT = aiohttp.ClientTimeout(total=10)


async def request(socket: Path, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One API call; DaemonUnreachable when no daemon listens on the socket."""
    if not socket.exists():
        raise DaemonUnreachable(f"no daemon API socket at {socket}")
    try:
        async with (
            aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(socket)), timeout=TIMEOUT) as session,
            session.request(method, f"http://lifeline{path}", json=body) as response,
        ):
            data = await response.json()
            if response.status >= 400:
                raise DaemonUnreachable(f"the daemon refused: {data.get('error', response.status)}")
            return data
    except (aiohttp.ClientError, TimeoutError) as err:
        raise DaemonUnreachable(f"cannot reach the daemon at {socket}: {err}") from err
