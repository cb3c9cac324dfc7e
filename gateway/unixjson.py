"""One client for the JSON APIs on unix sockets: the daemon's (for the CLI) and the trunk agent's (for the daemon)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from gateway.errors import LifelineError

# Only these mean "nobody there": a socket file that is missing, or one nobody accepts on (left by a crash).
NOBODY_THERE = (FileNotFoundError, ConnectionRefusedError)


class UnixApiError(LifelineError):
    """A call on a unix-socket API failed before a whole answer came back."""


class NotConnectedError(UnixApiError):
    """The socket could not be connected; nobody_there when it is missing or refused (no server at all)."""

    def __init__(self, os_error: OSError) -> None:
        super().__init__(str(os_error))
        self.os_error = os_error
        self.nobody_there = isinstance(os_error, NOBODY_THERE)


class AnswerTimeoutError(UnixApiError):
    """The server did not answer (or, on a stream, fell silent) within the time limit."""


class BrokenOffError(UnixApiError):
    """The server broke the exchange off, or answered something that is not HTTP."""


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: status, reason, and its body as JSON (None when it is not JSON)."""

    status: int
    reason: str
    data: Any


def _session(socket: Path, timeout: aiohttp.ClientTimeout) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(socket)), timeout=timeout)


async def request(socket: Path, method: str, path: str, body: Any = None, limit_s: float = 10.0) -> Reply:
    """One call, bounded by limit_s; errors as UnixApiError (an error status is a Reply, not an error)."""
    try:
        async with (
            _session(socket, aiohttp.ClientTimeout(total=limit_s)) as session,
            session.request(method, f"http://localhost{path}", json=body) as response,
        ):
            status, reason, raw = response.status, response.reason or "", await response.read()
    except aiohttp.ClientConnectorError as err:
        raise NotConnectedError(err.os_error) from err
    except TimeoutError as err:
        raise AnswerTimeoutError(f"no answer within {limit_s:g} s") from err
    except (aiohttp.ClientError, OSError) as err:
        raise BrokenOffError(str(err) or type(err).__name__) from err
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    return Reply(status, reason, data)


async def follow(
    socket: Path, path: str, silence_s: float, on_line: Callable[[dict[str, Any]], None], connect_s: float = 2.0
) -> None:
    """Read a JSON-lines stream, each object to on_line, until the server ends it.

    Every read is bounded by silence_s: the server sends a keepalive line more often than that, so
    a hung server is noticed (AnswerTimeoutError) rather than waited on for ever.
    """
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_s, sock_read=silence_s)
    try:
        async with _session(socket, timeout) as session, session.get(f"http://localhost{path}") as response:
            if response.status != 200:
                raise BrokenOffError(f"{path}: HTTP {response.status} {response.reason}")
            while True:
                async with asyncio.timeout(silence_s):
                    line = await response.content.readline()
                if not line:
                    return  # the server closed the stream: it stops or restarts
                try:
                    item = json.loads(line)
                except ValueError as err:
                    raise BrokenOffError(f"{path}: a line that is not JSON") from err
                on_line(item)
    except aiohttp.ClientConnectorError as err:
        raise NotConnectedError(err.os_error) from err
    except TimeoutError as err:
        raise AnswerTimeoutError(f"{path}: silent for {silence_s:g} s") from err
    except (aiohttp.ClientError, OSError) as err:
        raise BrokenOffError(str(err) or type(err).__name__) from err
