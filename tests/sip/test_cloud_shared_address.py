"""A cloud on the phones' own address: told apart by the socket its traffic arrives on, not by its address."""

from __future__ import annotations

import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.lab.cloud import LabCloud
from gateway.lab.daemon import LifelineProcess
from gateway.lab.phones import Phone, SipEndpoint, talk
from tests.conftest import REALM, lab_cloud, phone_via_lifeline, running_lifeline

pytestmark = pytest.mark.usefixtures("fresh_phones")

HOST = "127.0.0.1"  # the cloud, Lifeline and the phones all on one address, as in a one-machine lab
DOMAIN = "cloud.test"  # the phones' SIP domain: a name no resolver knows, so resolving it would fail the call


@pytest.fixture
def near_cloud(tmp_path: Path) -> Iterator[LabCloud]:
    with lab_cloud(tmp_path / "cloud", HOST) as lab:
        yield lab


@pytest.fixture
def lifeline(tmp_path: Path, near_cloud: LabCloud, extensions_csv: Path) -> Iterator[LifelineProcess]:
    with running_lifeline(tmp_path / "lifeline", extensions_csv, {"sbc": near_cloud.uri}, listen=HOST) as daemon:
        yield daemon


def phone(ep: SipEndpoint, lifeline: LifelineProcess, cloud: LabCloud, user: str) -> Phone:
    return phone_via_lifeline(ep, lifeline, cloud, user, domain=DOMAIN)  # Lifeline on HOST, as the cloud


def test_a_cloud_on_the_phones_address_relays_calls_and_survival_still_serves_them(
    sip_endpoint: SipEndpoint, near_cloud: LabCloud, lifeline: LifelineProcess
) -> None:
    ep = sip_endpoint
    alice, bob = phone(ep, lifeline, near_cloud, "1001"), phone(ep, lifeline, near_cloud, "1002")
    assert alice.register() == 200 and bob.register() == 200
    assert {"1001", "1002"} <= set(near_cloud.bindings())
    status = lifeline.status()
    assert status["mode"]["mode"] == "normal" and status["registrations"]["users"] == 2
    assert status["sip"]["cloud_port"] not in (None, lifeline.sip_port)

    # NORMAL: the call goes through the cloud and back to bob through Lifeline, twice over.
    seen = near_cloud.transactions()
    for _ in range(2):
        talk(ep, alice, bob)  # bob hangs up: his BYE crosses the same path back
    assert near_cloud.transactions() > seen, "the call did not go through the cloud"
    log = lifeline.log_path.read_text()
    assert "locally" not in log, "a call the cloud took was served locally"
    assert "did not resolve" not in log and "Unresolvable" not in log

    # SURVIVAL: Lifeline serves the same phones itself, by their copies of the cloud's bindings.
    lifeline.set_mode("survival")
    seen = near_cloud.transactions()
    talk(ep, alice, bob)
    assert near_cloud.transactions() == seen, "a survival call reached the cloud"


@pytest.fixture
def tcp_lifeline(near_cloud: LabCloud, extensions_csv: Path) -> Iterator[dict[str, Any]]:
    work = Path(tempfile.mkdtemp(prefix="ll-"))  # short: Kamailio's RPC socket path has ~100 bytes
    daemon = LifelineProcess(
        work / "ll",
        {
            "cloud": {"sbc": f"{near_cloud.uri};transport=tcp", "realm": REALM},
            "sip": {"listen": HOST, "children": 2, "transports": ["udp", "tcp"]},
        },
    )
    try:
        daemon.cli("extensions", "import", str(extensions_csv))
        yield daemon.start()
    finally:
        daemon.stop()
        shutil.rmtree(work, ignore_errors=True)


def test_a_local_program_on_the_clouds_address_is_not_taken_for_the_cloud(tcp_lifeline: dict[str, Any]) -> None:
    # Over TCP the SBC's address alone would admit any program on this box that connects to the cloud
    # socket: as "the cloud" it could have Lifeline relay, unauthenticated, to any address it names.
    target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target.bind((HOST, 0))
    target.settimeout(0.1)
    victim = target.getsockname()[1]
    cloud_port = int(tcp_lifeline["sip"]["cloud_port"])
    with socket.create_connection((HOST, cloud_port), timeout=5) as attacker:
        port = attacker.getsockname()[1]
        invite = (
            f"INVITE sip:0049301234567@{HOST}:{victim};transport=udp SIP/2.0\r\n"
            f"Via: SIP/2.0/TCP {HOST}:{port};branch=z9hG4bK-spoof-1\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:cloud@{DOMAIN}>;tag=spoof\r\n"
            f"To: <sip:0049301234567@{HOST}>\r\n"
            "Call-ID: spoof-1@attacker\r\nCSeq: 1 INVITE\r\n"
            f"Contact: <sip:attacker@{HOST}:{port};transport=tcp>\r\nContent-Length: 0\r\n\r\n"
        )
        attacker.sendall(invite.encode())
        attacker.settimeout(10)
        answer = b""
        while not re.search(rb"SIP/2.0 [2-6]\d\d ", answer):
            chunk = attacker.recv(4096)
            assert chunk, f"Lifeline closed the connection; it said {answer[:200]!r}"
            answer += chunk
    final = re.findall(rb"SIP/2.0 ([2-6]\d\d)", answer)[-1].decode()
    with pytest.raises(TimeoutError):
        target.recvfrom(4096)  # nothing was relayed to the address the INVITE named
    target.close()
    assert final in {"401", "403", "407"}, answer[:300]
