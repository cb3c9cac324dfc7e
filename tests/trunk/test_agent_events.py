"""The agent's events reach the daemon pushed on one stream (GET /events): at once, each once, across agent restarts."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gateway import unixjson
from gateway.config import parse
from gateway.store import Store
from gateway.trunk.agent import api as agent_api
from gateway.trunk.agent.api import ControlApi
from gateway.trunk.agent.events import EventKind, EventLog
from gateway.trunk.sim.thread import SimThread
from gateway.trunk.supervisor import TrunkSupervisor
from tests.trunk.lab import quectel_sim, start_trunked

ADMIN = "+4915199990000"


class StandInAgent(SimpleNamespace):
    """What the control API's event stream uses of an agent: its event log and its socket (no modems, no SIP)."""


async def serve(socket: Path) -> tuple[StandInAgent, ControlApi]:
    agent = StandInAgent(events=EventLog(), secrets=SimpleNamespace(control_socket=str(socket)))
    api = ControlApi(agent)  # type: ignore[arg-type]
    await api.start()
    return agent, api


async def test_events_are_pushed_without_a_poll_and_a_new_agent_s_are_not_skipped(tmp_path: Path) -> None:
    short = Path(tempfile.mkdtemp(prefix="ev", dir="/tmp"))  # a unix socket path has room for ~100 bytes
    socket = short / "trunk.sock"
    store = Store(tmp_path / "db.sqlite")
    supervisor = TrunkSupervisor(parse({}), None, store)
    supervisor.socket = socket
    received: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

    def into(kind: str) -> Any:
        async def handler(event: dict[str, Any]) -> None:
            await received.put((kind, event))

        return handler

    supervisor.on_emergency.add(into("emergency"))
    supervisor.on_sms.add(into("sms"))
    supervisor.on_limit.add(into("limit"))

    async def next_one() -> tuple[str, dict[str, Any]]:
        async with asyncio.timeout(10):  # a safety net only: the test waits on the event itself
            return await received.get()

    agent, api = await serve(socket)
    # No agent process here, so the supervisor's 2 s status poll never runs: only the stream carries events.
    supervisor.follow_events()
    try:
        emergency = {"call": "c-1", "extension": "1001", "number": "112", "modem": "lte0", "at": time.time()}
        agent.events.add(EventKind.EMERGENCY, emergency)
        assert await next_one() == ("emergency", emergency)  # as the agent sent it, without its stream number
        for n in range(3):  # the first agent's cursor goes past what the next one will number its events
            agent.events.add(EventKind.SMS, {"sender": "+4917000000", "text": f"first agent {n}", "received": 1.0})
            assert (await next_one())[1]["text"] == f"first agent {n}"

        # The agent restarts: its numbers start again at 1, and what it reports before the daemon is
        # back on its socket (the modem coming up, an SMS) reaches the daemon all the same, once.
        await api.stop()
        agent, api = await serve(socket)
        link = {"modem": "lte0", "old": "registering", "new": "ready", "reason": "registered", "problem": None}
        agent.events.add(EventKind.LINK, {**link, "at": time.time()})
        agent.events.add(EventKind.SMS, {"sender": "+4917000001", "text": "second agent", "received": 2.0})
        assert await next_one() == ("sms", {"sender": "+4917000001", "text": "second agent", "received": 2.0})
        limit = {"rule": "rate", "extension": "1001", "number": "+49151****78", "answer": "403 Limit", "at": 3.0}
        agent.events.add(EventKind.LIMIT, limit)
        assert await next_one() == ("limit", limit)
        assert received.empty()  # nothing twice
        messages = [e["message"] for e in store.recent_events() if e["kind"] == "trunk"]
        assert "modem lte0: registering → ready" in messages, messages
        assert any(m.startswith("trunk limit rate: extension 1001 refused") for m in messages), messages
    finally:
        await supervisor.stop()
        await api.stop()
        store.close()
        shutil.rmtree(short, ignore_errors=True)


class EnoughError(Exception):
    """Raised from a line handler to stop reading a stream that would otherwise go on."""


async def test_a_quiet_agent_keeps_the_stream_alive_and_a_hung_one_is_noticed(monkeypatch: pytest.MonkeyPatch) -> None:
    short = Path(tempfile.mkdtemp(prefix="ev", dir="/tmp"))
    monkeypatch.setattr(agent_api, "KEEPALIVE_S", 0.1)
    try:
        _, api = await serve(short / "quiet.sock")
        lines: list[dict[str, Any]] = []

        def take(line: dict[str, Any]) -> None:
            lines.append(line)
            if len(lines) == 4:
                raise EnoughError

        # Nothing happens for several keepalive periods: keepalives, each well inside the silence limit.
        with pytest.raises(EnoughError):
            await unixjson.follow(short / "quiet.sock", "/events", 1.0, take)
        assert [line["kind"] for line in lines] == ["hello", "keepalive", "keepalive", "keepalive"]
        await api.stop()

        release = asyncio.Event()

        async def hung(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # Answers and says hello, then never another line: an agent stopped or stuck.
            await reader.readuntil(b"\r\n\r\n")
            hello = b'{"kind": "hello", "boot": "b", "seq": 0}\n'
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (len(hello), hello))
            await writer.drain()
            await release.wait()
            writer.close()

        server = await asyncio.start_unix_server(hung, str(short / "hung.sock"))
        got: list[dict[str, Any]] = []
        try:
            with pytest.raises(unixjson.AnswerTimeoutError):
                await unixjson.follow(short / "hung.sock", "/events", 0.5, got.append)
        finally:
            release.set()
            server.close()
            await server.wait_closed()
        assert got == [{"kind": "hello", "boot": "b", "seq": 0}]
    finally:
        shutil.rmtree(short, ignore_errors=True)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimThread]:
    with quectel_sim(tmp_path / "by-id", 5) as thread:
        yield thread


def test_after_the_agent_process_is_killed_its_successor_s_events_all_arrive_once(
    tmp_path: Path, sim: SimThread
) -> None:
    daemon = start_trunked(tmp_path, sim.sim.by_id_dir, {}, f'sms_admins = ["{ADMIN}"]\n')
    try:

        def forwarded(text: str) -> list[str]:
            return [t for to, t in sim.call(lambda: list(sim.sim.sms_sent)) if to == ADMIN and text in t]

        def wait(what: str, done: Any, limit_s: float = 60) -> None:
            deadline = time.monotonic() + limit_s
            while not done():
                assert time.monotonic() < deadline, f"timed out waiting for {what}"
                time.sleep(0.1)

        def readies() -> int:
            return sum(
                1 for e in daemon.status()["events"] if e["kind"] == "trunk" and e["message"].endswith("→ ready")
            )

        wait("the first agent's modem READY event", lambda: readies() >= 1)
        sim.call(sim.sim.deliver_sms, "+4917012345678", "before the restart")
        wait("the first SMS forwarded", lambda: forwarded("before the restart"))
        ready_before = readies()
        first = int(daemon.status()["trunk"]["pid"])
        os.kill(first, signal.SIGKILL)  # a crash: nothing said to the daemon first

        def running_again() -> bool:
            trunk = daemon.status().get("trunk") or {}
            modem = (trunk.get("modems") or [{}])[0]
            return (
                trunk.get("pid") not in (None, first)
                and trunk.get("state") == "running"
                and modem.get("state") == "ready"
            )

        wait("the agent to be restarted with its modem ready", running_again)
        # The new agent's modem came up before the daemon was back on its stream: still reported.
        wait("the new agent's modem READY event", lambda: readies() > ready_before)
        sim.call(sim.sim.deliver_sms, "+4917012345678", "after the restart")
        wait("the second SMS forwarded", lambda: forwarded("after the restart"))
        sim.call(sim.sim.deliver_sms, "+4917012345678", "and one more")
        wait("the third SMS forwarded", lambda: forwarded("and one more"))
        assert len(forwarded("before the restart")) == 1 and len(forwarded("after the restart")) == 1
        assert readies() == ready_before + 1
    finally:
        daemon.stop()
