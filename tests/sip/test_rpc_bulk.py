"""A branch with hundreds of phones: Kamailio's long replies come over its FIFO, whole."""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.errors import RpcError
from gateway.lab.daemon import LifelineProcess
from gateway.sip.rpc import KamailioRpc

PHONES = 300  # usrloc's dump of these is ~170 KiB: more than a datagram carries


@pytest.fixture
def daemon() -> Iterator[LifelineProcess]:
    work = Path(tempfile.mkdtemp(prefix="ll-"))  # short: a unix socket's path has ~100 bytes
    process = LifelineProcess(
        work / "ll",
        {"sip": {"listen": "127.0.0.1", "children": 2}, "api": {"enabled": False}, "health": {"lan_target": "off"}},
    )
    try:
        process.start()
        yield process
    finally:
        process.stop()
        shutil.rmtree(work, ignore_errors=True)


def test_every_phone_of_a_large_branch_is_listed(daemon: LifelineProcess) -> None:
    rpc = KamailioRpc(daemon.workdir / "run" / "kamailio-rpc.sock")
    for i in range(PHONES):
        number = str(2000 + i)
        contact = f"sip:{number}@127.0.0.1:{40000 + i};transport=udp"
        rpc.call_blocking("ul.add", "location", number, contact, 3600, 1.0, "", 0, 0, 4294967295)
    with pytest.raises(RpcError):
        rpc.call_blocking("ul.dump")  # the datagram cannot carry it: Kamailio drops the reply

    status = json.loads(daemon.cli("status", "--json").stdout)
    phones = status["registrations"]["phones"]
    assert phones is not None and len(phones) == PHONES
    assert {p["extension"]: p["source"] for p in phones}["2299"] == "127.0.0.1:40299"
    # Each reply FIFO is removed once read.
    assert not list((daemon.workdir / "run").glob("lifeline_reply_*"))
    # So is each datagram call's own reply socket.
    assert not [p.name for p in (daemon.workdir / "run").iterdir() if p.is_socket() and p.name.startswith("c")]


def test_a_reply_from_anyone_but_kamailio_is_not_taken() -> None:
    """The client's abstract address takes datagrams from any local process: only Kamailio's path counts."""
    work = Path(tempfile.mkdtemp(prefix="ll-"))
    server_path = work / "kamailio-rpc.sock"
    answered = threading.Event()
    try:
        with (
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server,
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as forger,
        ):
            server.bind(str(server_path))
            forger.bind(str(work / "forger.sock"))

            def serve() -> None:  # a stand-in for Kamailio: the forger's answer reaches the client first
                request, client = server.recvfrom(65536)
                ident = json.loads(request)["id"]
                forger.sendto(json.dumps({"jsonrpc": "2.0", "result": "forged", "id": ident}).encode(), client)
                server.sendto(json.dumps({"jsonrpc": "2.0", "result": "kamailio", "id": ident}).encode(), client)
                answered.set()

            thread = threading.Thread(target=serve, daemon=True)
            thread.start()
            assert KamailioRpc(server_path, timeout=5).call_blocking("core.version") == "kamailio"
            assert answered.wait(5)
            thread.join(5)
    finally:
        shutil.rmtree(work, ignore_errors=True)
