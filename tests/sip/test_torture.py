"""RFC 4475-style torture messages against a real Lifeline Kamailio: after each one it is the same process, and a
real phone still registers.

The messages are files in tests/data/sip_torture/ (its README says what is wrong with each). Each goes over
UDP from a loopback address of its own (bans and flood limits are per source: a ban must not hide a message
from the parser), some over TCP too. An OPTIONS from the probe address then proves Kamailio has taken the
message off its socket, and a pjsua2 phone registers with its password.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.lab.daemon import LifelineProcess
from gateway.lab.phones import Phone, SipEndpoint
from gateway.lab.sipclient import SipClient
from gateway.sip.rpc import KamailioRpc

TORTURE = Path(__file__).resolve().parents[1] / "data" / "sip_torture"
MESSAGES = sorted(TORTURE.glob("*.sip"))
# Over TCP as well: a stream has failure modes of its own (a body that never completes, bytes after a message).
TCP = {
    "02-content-length-short",
    "03-content-length-beyond-body",
    "14-folded-headers",
    "16-nul-in-headers",
    "18-huge-header",
    "29-only-line-ends",
    "30-headers-never-end",
}
PASSWORD = "torture-phone-1001"


@dataclass
class Lab:
    """The daemon, its Kamailio's pid when the module started, a registered phone, a probe."""

    daemon: LifelineProcess
    kamailio_pid: int
    phone: Phone
    probe: SipClient
    rpc: KamailioRpc

    @property
    def server(self) -> tuple[str, int]:
        return ("127.0.0.1", self.daemon.sip_port)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, sip_endpoint: SipEndpoint) -> Iterator[Lab]:
    workdir = tmp_path_factory.mktemp("torture")
    csv = workdir / "phones.csv"
    csv.write_text(f"number,password,name\n1001,{PASSWORD},Torture Test\n")
    daemon = LifelineProcess(
        workdir / "lifeline", {"sip": {"listen": "127.0.0.1", "children": 2, "transports": ["udp", "tcp"]}}
    )
    daemon.cli("extensions", "import", str(csv))
    daemon.cli("mode", "survival")
    status = daemon.start()
    uri = f"sip:127.0.0.1:{daemon.sip_port}"
    try:
        phone = sip_endpoint.phone("1001", PASSWORD, domain="torture.lifeline.test", registrar=uri, proxy=uri + ";lr")
        assert phone.register() == 200
        with SipClient(("127.0.0.1", daemon.sip_port)) as probe:
            yield Lab(
                daemon,
                int(status["sip"]["kamailio"]["pid"]),
                phone,
                probe,
                KamailioRpc(daemon.workdir / "run" / "kamailio-rpc.sock"),
            )
    finally:
        sip_endpoint.reset()
        daemon.stop()


def filled(raw: bytes, port: int, source: str, source_port: int, number: int) -> bytes:
    """The message's bytes with its placeholders (README) filled in."""
    for name, value in (("@PORT@", port), ("@SRCPORT@", source_port), ("@SRC@", source), ("@N@", number)):
        raw = raw.replace(name.encode(), str(value).encode())
    return raw


def send_udp(lab: Lab, path: Path, number: int, answered: bool = False) -> list[bytes]:
    """Send the message in one datagram, then what Kamailio answered by the time the probe is answered.

    answered: the message must get an answer; wait for it (another UDP worker may answer the probe first).
    """
    source = f"127.0.0.{100 + number}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.sendto(filled(path.read_bytes(), lab.daemon.sip_port, source, sock.getsockname()[1], number), lab.server)
        assert_probe_answered(lab)
        answers = []
        if answered:
            sock.settimeout(5)
            with contextlib.suppress(TimeoutError):
                answers.append(sock.recv(65535))
        sock.setblocking(False)
        while True:
            try:
                answers.append(sock.recv(65535))
            except BlockingIOError:
                return answers


def send_tcp(lab: Lab, path: Path, number: int) -> None:
    """Send the message on a connection of its own, end it, and wait until Kamailio closes its side."""
    source = f"127.0.0.{150 + number}"
    with socket.create_connection(lab.server, timeout=5, source_address=(source, 0)) as sock:
        try:
            sock.sendall(filled(path.read_bytes(), lab.daemon.sip_port, source, sock.getsockname()[1], number))
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65535):  # answers, then EOF: Kamailio has read all of it and let go
                pass
        except OSError as err:
            # Kamailio may refuse a message too large for its buffer by closing at once (a reset, so
            # our end is no longer connected): that is letting go too. Any other error is not.
            if err.errno not in (errno.ECONNRESET, errno.ENOTCONN, errno.EPIPE):
                raise


def assert_probe_answered(lab: Lab) -> None:
    """A well-formed OPTIONS from the probe address gets its 200 (every datagram before it was taken)."""
    uri = f"sip:127.0.0.1:{lab.daemon.sip_port}"
    probe = lab.probe
    answer = probe.final(probe.request("OPTIONS", uri, from_uri="<sip:probe@lifeline.test>", to_uri=f"<{uri}>"), 5)
    assert answer is not None and answer.code == 200, "Kamailio stopped answering"


def assert_same_kamailio(lab: Lab) -> None:
    """The Kamailio that started with the module still runs and answers RPC: nothing crashed or restarted."""
    with open(f"/proc/{lab.kamailio_pid}/stat") as stat:
        assert stat.read().rsplit(")", 1)[1].split()[0] != "Z", "Kamailio exited"
    assert int(lab.rpc.call_blocking("core.uptime")["uptime"]) >= 0


def test_there_are_enough_torture_messages() -> None:
    assert len(MESSAGES) >= 20 and {p.stem for p in MESSAGES} >= TCP
    assert max(p.stat().st_size for p in MESSAGES) > 64000  # one fills a UDP datagram


@pytest.mark.parametrize("path", MESSAGES, ids=lambda p: p.stem)
def test_after_each_torture_message_kamailio_lives_and_a_phone_registers(lab: Lab, path: Path) -> None:
    number = MESSAGES.index(path) + 1
    answers = send_udp(lab, path, number, answered=path.stem == "01-valid-options")
    print(path.stem, [a.split(b"\r\n", 1)[0] for a in answers])  # pytest -s: what Kamailio made of it
    if path.stem == "01-valid-options":
        assert answers and answers[0].startswith(b"SIP/2.0 200"), "the baseline message was not answered"
    if path.stem in TCP:
        send_tcp(lab, path, number)
    assert lab.phone.register() == 200
    assert_same_kamailio(lab)
