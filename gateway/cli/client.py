"""The CLI's client for the daemon's API on its unix socket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from gateway import unixjson
from gateway.errors import DaemonRequestError, DaemonUnreachableError

TIMEOUT = aiohttp.ClientTimeout(total=10)


async def request(
    socket: Path, method: str, path: str, body: dict[str, Any] | None = None, limit_s: float | None = None
) -> Any:
    """One API call: DaemonUnreachableError when no daemon is there, DaemonRequestError when it fails the call."""
    # Only "nobody there" (the socket missing, or nobody accepting on it: left by a crash) lets the
    # CLI write the store itself. Anything else means a daemon is there, and it stays the only writer.
    limit = (TIMEOUT.total or 10.0) if limit_s is None else limit_s
    what = f"{method} {path}"
    try:
        reply = await unixjson.request(socket, method, path, body, limit_s=limit)
    except unixjson.NotConnectedError as err:
        if err.nobody_there:
            raise DaemonUnreachableError(f"no daemon at {socket} ({err.os_error.strerror})") from err
        raise DaemonRequestError(f"cannot talk to the daemon at {socket}: {err.os_error}") from err
    except unixjson.AnswerTimeoutError as err:
        raise DaemonRequestError(f"the daemon at {socket} did not answer {what} within {limit:g} s") from err
    except unixjson.UnixApiError as err:
        raise DaemonRequestError(f"the daemon at {socket} broke off {what}: {err}") from err
    data = reply.data
    if reply.status >= 400:
        error = data.get("error") if isinstance(data, dict) else None
        verdict = "refused" if reply.status < 500 else "failed"
        raise DaemonRequestError(
            f"the daemon {verdict} {what} (HTTP {reply.status} {reply.reason}): {error or 'no detail'}"
        )
    if data is None:
        raise DaemonRequestError(f"the daemon answered {what} with something that is not JSON (HTTP {reply.status})")
    return data
