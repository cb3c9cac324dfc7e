"""The CLI's client for the daemon's API on its unix socket."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp

from gateway.errors import DaemonRequestError, DaemonUnreachableError

TIMEOUT = aiohttp.ClientTimeout(total=10)
# Only these mean "no daemon": a socket file that is missing, or one nobody accepts on (left by a
# crash). Anything else means a daemon is there, and it stays the only writer of the store.
NOBODY_THERE = (FileNotFoundError, ConnectionRefusedError)


async def request(
    socket: Path, method: str, path: str, body: dict[str, Any] | None = None, limit_s: float | None = None
) -> Any:
    """One API call: DaemonUnreachableError when no daemon is there, DaemonRequestError when it fails the call."""
    limit = TIMEOUT if limit_s is None else aiohttp.ClientTimeout(total=limit_s)
    what = f"{method} {path}"
    try:
        async with (
            aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(socket)), timeout=limit) as session,
            session.request(method, f"http://lifeline{path}", json=body) as response,
        ):
            status, reason, raw = response.status, response.reason, await response.read()
    except aiohttp.ClientConnectorError as err:
        if isinstance(err.os_error, NOBODY_THERE):
            raise DaemonUnreachableError(f"no daemon at {socket} ({err.os_error.strerror})") from err
        raise DaemonRequestError(f"cannot talk to the daemon at {socket}: {err.os_error}") from err
    except TimeoutError as err:
        limit_text = f"{limit.total:g} s" if limit.total else "its time limit"
        raise DaemonRequestError(f"the daemon at {socket} did not answer {what} within {limit_text}") from err
    except aiohttp.ClientError as err:
        raise DaemonRequestError(f"the daemon at {socket} broke off {what}: {err}") from err
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if status >= 400:
        error = data.get("error") if isinstance(data, dict) else None
        verdict = "refused" if status < 500 else "failed"
        raise DaemonRequestError(f"the daemon {verdict} {what} (HTTP {status} {reason}): {error or 'no detail'}")
    if data is None:
        raise DaemonRequestError(f"the daemon answered {what} with something that is not JSON (HTTP {status})")
    return data
