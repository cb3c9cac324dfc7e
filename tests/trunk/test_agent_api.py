"""The agent's control API refuses what it cannot answer with an HTTP error and goes on serving the daemon."""

from __future__ import annotations

import asyncio
import shutil
import stat
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gateway import unixjson
from gateway.trunk.agent.api import ControlApi
from gateway.trunk.agent.events import EventKind, EventLog


class StandInAgent(SimpleNamespace):
    """What these routes use of an agent: its event log, its socket, no modems and no SIP account."""


@pytest.fixture
async def served() -> AsyncIterator[tuple[Path, StandInAgent]]:
    short = Path(tempfile.mkdtemp(prefix="api", dir="/tmp"))  # a unix socket path has room for ~100 bytes
    socket = short / "trunk.sock"
    agent = StandInAgent(
        events=EventLog(), secrets=SimpleNamespace(control_socket=str(socket)), slots=[], account=None, ringer=None
    )
    api = ControlApi(agent)  # type: ignore[arg-type]
    await api.start()
    try:
        yield socket, agent
    finally:
        await api.stop()
        shutil.rmtree(short, ignore_errors=True)


async def raw(socket: Path, data: bytes) -> bytes:
    """Send bytes as they are and read the answer until the agent closes the connection."""
    reader, writer = await asyncio.open_unix_connection(str(socket))
    try:
        writer.write(data)
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()


async def test_bad_requests_get_http_errors_and_the_api_keeps_serving(served: tuple[Path, StandInAgent]) -> None:
    socket, agent = served
    assert stat.S_IMODE(socket.stat().st_mode) == 0o600  # the daemon's only: SMS to any number otherwise

    sms = await unixjson.request(socket, "POST", "/sms", {"numbers": ["+4917012345678"], "text": "hi"})
    assert (sms.status, sms.data) == (200, {"results": {"+4917012345678": "no modem ready"}})
    missing = await unixjson.request(socket, "POST", "/sms", {"text": "no numbers"})
    assert missing.status == 400 and "numbers" in missing.data["error"]
    ring = await unixjson.request(socket, "POST", "/ring", {"to": ["1001"], "display": "d", "caller": "c", "ring_s": 5})
    assert ring.data == {"results": {"1001": "no SIP account"}}
    assert (await unixjson.request(socket, "GET", "/sms")).status == 405
    assert (await unixjson.request(socket, "GET", "/nowhere")).status == 404

    not_json = b"POST /sms HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
    assert (await raw(socket, not_json)).startswith(b"HTTP/1.1 400 ")
    assert (await raw(socket, b"NOT HTTP AT ALL\r\n\r\n")).startswith(b"HTTP/1.1 400 ")

    # Still serving: the event stream says hello, then carries what happens.
    agent.events.add(EventKind.SMS, {"sender": "+4917000000", "text": "after the bad ones", "received": 1.0})
    lines: list[dict[str, Any]] = []

    class EnoughError(Exception):
        pass

    def take(line: dict[str, Any]) -> None:
        lines.append(line)
        if len(lines) == 2:
            raise EnoughError

    with pytest.raises(EnoughError):
        await unixjson.follow(socket, "/events", 5.0, take)
    assert lines[0]["kind"] == "hello" and lines[1]["text"] == "after the bad ones"
