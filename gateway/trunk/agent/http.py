"""HTTP/1.1 on a unix socket for the control API: h11 speaks the protocol, asyncio's streams carry the bytes.

aiohttp's server cost the agent ~9 MiB resident (aiohttp with its client, yarl, multidict, …) for five
routes that only the daemon calls; h11 is the sans-I/O HTTP library under httpx and uvicorn, pure Python.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import h11
import structlog

log = structlog.get_logger("trunk.agent")

READ_S = 10.0  # a request must arrive whole within this (also how long an idle keep-alive connection stays)
WRITE_S = 10.0  # a reader that takes no bytes for this long (a hung daemon) loses its connection
MAX_BODY = 1 << 20  # as aiohttp's default client_max_size: an SMS or a ring list is far smaller


class BadRequestError(Exception):
    """The request cannot be answered as sent (answered 400 with this message)."""


@dataclass(frozen=True)
class Request:
    """What a handler gets: the method, the path, the query and the body."""

    method: str
    path: str
    query: dict[str, str]
    body: bytes

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object (BadRequestError when it is not one)."""
        try:
            data = json.loads(self.body)
        except ValueError as err:
            raise BadRequestError("the body is not JSON") from err
        if not isinstance(data, dict):
            raise BadRequestError("the body must be a JSON object")
        return data


@dataclass(frozen=True)
class Answer:
    """A JSON answer."""

    data: Any
    status: int = 200


@dataclass(frozen=True)
class Stream:
    """An answer of JSON lines, one for each item, until the iterator ends (or the reader goes)."""

    items: AsyncGenerator[dict[str, Any], None]
    content_type: str = "application/x-ndjson"


Handler = Callable[[Request], Awaitable[Answer | Stream]]


@dataclass
class Server:
    """Routes by (method, path) served on a unix socket (mode 0600)."""

    routes: dict[tuple[str, str], Handler]
    _server: asyncio.Server | None = None
    _connections: set[asyncio.Task[None]] = field(default_factory=set)
    _idle: set[asyncio.Task[None]] = field(default_factory=set)  # waiting for a request: nothing to finish

    async def start(self, path: str) -> None:
        """Listen on path (a stale socket file there is replaced)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self._server = await asyncio.start_unix_server(self._connection, path)
        os.chmod(path, 0o600)

    async def stop(self, grace_s: float = 2.0) -> None:
        """Stop accepting; requests in flight get grace_s to finish, then they are cut."""
        if self._server is None:
            return
        self._server.close()
        await self._server.wait_closed()
        for task in self._idle:
            task.cancel()
        pending = set(self._connections)
        if pending:
            _, late = await asyncio.wait(pending, timeout=grace_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # asyncio runs each connection's callback as a task of its own
        self._connections.add(task)
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=16 * 1024)
        try:
            while True:
                self._idle.add(task)
                request = await _read_request(conn, reader)
                self._idle.discard(task)
                if request is None:
                    break
                await _send(conn, writer, await self._answer(request))
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    break  # either side asked to close (or a body was left unread)
                conn.start_next_cycle()
        except h11.RemoteProtocolError as err:
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                with contextlib.suppress(h11.LocalProtocolError, OSError, TimeoutError):
                    await _send(conn, writer, Answer({"error": f"bad request: {err}"}, err.error_status_hint))
        except (OSError, TimeoutError):
            pass  # the reader went away or stalled: nothing to answer to
        finally:
            self._connections.discard(task)
            self._idle.discard(task)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _answer(self, request: Request) -> Answer | Stream:
        handler = self.routes.get((request.method, request.path))
        if handler is None:
            allowed = sorted(method for method, path in self.routes if path == request.path)
            return Answer({"error": "method not allowed"}, 405) if allowed else Answer({"error": "not found"}, 404)
        try:
            return await handler(request)
        except BadRequestError as err:
            return Answer({"error": str(err)}, 400)
        except Exception:  # as aiohttp did: a handler's bug is a 500 and a log line, not a dead agent
            log.exception("control API request failed", method=request.method, path=request.path)
            return Answer({"error": "internal error"}, 500)


async def _read_request(conn: h11.Connection, reader: asyncio.StreamReader) -> Request | None:
    """The next whole request on the connection (None when the client closed it)."""
    head = await _next_event(conn, reader)
    if isinstance(head, h11.ConnectionClosed):
        return None
    if not isinstance(head, h11.Request):
        raise h11.RemoteProtocolError(f"unexpected {type(head).__name__}", error_status_hint=400)
    body = bytearray()
    while not isinstance(event := await _next_event(conn, reader), h11.EndOfMessage):
        if not isinstance(event, h11.Data):
            raise h11.RemoteProtocolError("the body was cut off", error_status_hint=400)
        body += event.data
        if len(body) > MAX_BODY:
            raise h11.RemoteProtocolError("the body is too large", error_status_hint=413)
    target = urlsplit(head.target.decode("ascii", "replace"))
    return Request(head.method.decode("ascii", "replace"), target.path, dict(parse_qsl(target.query)), bytes(body))


async def _next_event(conn: h11.Connection, reader: asyncio.StreamReader) -> Any:
    while (event := conn.next_event()) is h11.NEED_DATA:
        async with asyncio.timeout(READ_S):
            conn.receive_data(await reader.read(64 * 1024))  # b"": the client closed its side
    return event


async def _send(conn: h11.Connection, writer: asyncio.StreamWriter, answer: Answer | Stream) -> None:
    if isinstance(answer, Answer):
        body = json.dumps(answer.data).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        await _write(writer, conn.send(h11.Response(status_code=answer.status, headers=headers)))
        await _write(writer, conn.send(h11.Data(data=body)))
    else:
        # No length: chunked to an HTTP/1.1 reader (h11 chooses), so each line arrives as it is written.
        headers = [("Content-Type", answer.content_type)]
        await _write(writer, conn.send(h11.Response(status_code=200, headers=headers)))
        try:
            async for item in answer.items:
                await _write(writer, conn.send(h11.Data(data=json.dumps(item).encode() + b"\n")))
        finally:
            await answer.items.aclose()  # its clean-up now, not whenever the collector gets to it
    await _write(writer, conn.send(h11.EndOfMessage()))


async def _write(writer: asyncio.StreamWriter, data: bytes | None) -> None:
    if data:
        writer.write(data)
        async with asyncio.timeout(WRITE_S):
            await writer.drain()
