"""The SIP edge under attack, with the attackers' own tools: SIPVicious, replayed and forged SIP, a Route trick.

Real daemon in SURVIVAL, its Kamailio, the trunk agent on a simulated modem, pjsua2 phones. Each attack
comes from an address of its own on loopback (127.0.0.x), as a second host on the office LAN would:
bans and flood limits are per source, and the real phones keep using 127.0.0.1.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from gateway.lab.cloud import LabCloud
from gateway.lab.daemon import LifelineProcess
from gateway.lab.phones import SipEndpoint
from gateway.lab.sipclient import SipClient, authorization, challenge_of
from gateway.sip.rpc import KamailioRpc
from gateway.sip.stamp import HEADER, signature
from gateway.trunk import tones
from gateway.trunk.sim import FarEnd
from gateway.trunk.sim.thread import SimThread
from tests.conftest import CLOUD_HOST
from tests.conftest import PASSWORDS as CLOUD_PASSWORDS
from tests.trunk.lab import DOMAIN, PASSWORDS, phone, quectel_sim, start_trunked

pytestmark = pytest.mark.usefixtures("fresh_phones")

# 1003's password is the 20th guess of `svcrack -r1-100 -z8`; the rest are the trunk lab's.
CRACKABLE = "00000020"
EXTENSIONS = {**PASSWORDS, "1003": CRACKABLE}
ABROAD = "00442079460018"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimThread]:
    far = FarEnd(source=tones.Tone((1000.0,)), answer_after_s=1.0)
    with quectel_sim(tmp_path_factory.mktemp("sim") / "by-id", 7, far) as thread:
        yield thread


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory, sim: SimThread) -> Iterator[LifelineProcess]:
    """SURVIVAL, the trunk on a simulated modem; 1001 may call abroad, 1002 and 1003 only nationally."""
    workdir = tmp_path_factory.mktemp("edge")
    settings = {"sip": {"listen": "127.0.0.1", "children": 2, "max_contacts": 3}}
    daemon = start_trunked(workdir, sim.sim.by_id_dir, settings, 'reach = { "1001" = "international" }\n')
    csv = workdir / "all.csv"
    csv.write_text("number,password,name\n" + "".join(f"{n},{p},Ext {n}\n" for n, p in EXTENSIONS.items()))
    daemon.cli("extensions", "import", str(csv))
    yield daemon
    daemon.stop()


def server(daemon: LifelineProcess) -> tuple[str, int]:
    return ("127.0.0.1", daemon.sip_port)


def rpc(daemon: LifelineProcess) -> KamailioRpc:
    return KamailioRpc(daemon.workdir / "run" / "kamailio-rpc.sock")


# SIPVicious 0.3.8 accepts -b (binding address) but never passes it on: its socket binds to any
# address and the kernel sends from 127.0.0.1, the real phones' address. The wrapper binds it where
# the attacker is; nothing else about the tool changes.
RUN_FROM = """
import socket, sys
source, tool = sys.argv.pop(1), sys.argv.pop(1)
bind = socket.socket.bind
socket.socket.bind = lambda sock, addr: bind(sock, (source, addr[1]) if addr[0] in ("", "0.0.0.0") else addr)
main = __import__(f"sipvicious.{tool}", fromlist=["main"]).main
sys.argv[0] = f"sipvicious_{tool}"
sys.exit(main())
"""


def sipvicious(tool: str, source: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a SIPVicious tool from source (a loopback address of its own), aimed at Lifeline."""
    command = [sys.executable, "-c", RUN_FROM, source, tool, "-x", source, "-P", "0", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


# ------------------------------------------------------------------ enumeration


@pytest.mark.parametrize(
    ("method", "source"), [("REGISTER", "127.0.0.11"), ("INVITE", "127.0.0.12"), ("OPTIONS", "127.0.0.13"),
                           ("BYE", "127.0.0.14")]
)  # fmt: skip
def test_svwar_finds_no_extension(edge: LifelineProcess, method: str, source: str) -> None:
    scan = sipvicious(
        "svwar", source, "-e1000-1010", "-m", method, "--force", "--maximumtime", "3", "-p", str(edge.sip_port),
        "127.0.0.1",
    )  # fmt: skip
    output = scan.stdout + scan.stderr
    assert "since we last received a response" not in output, output  # it was answered, not dropped
    assert not re.search(r"\b100[1239]\b", scan.stdout), output
    assert "found nothing" in output, output


# ------------------------------------------------------------------ brute force


def test_svcrack_is_banned_before_its_20th_guess_while_the_real_phone_registers(
    sip_endpoint: SipEndpoint, edge: LifelineProcess
) -> None:
    attacker = "127.0.0.21"
    crack = sipvicious(
        "svcrack", attacker, "-u", "1003", "-r", "1-100", "-z", "8", "--maximumtime", "2", "-p", str(edge.sip_port),
        "127.0.0.1",
    )  # fmt: skip
    output = crack.stdout + crack.stderr
    assert CRACKABLE not in output, output
    bans = edge.wait_log(rf"lifeline: banned {re.escape(attacker)} for \d+s$")
    assert len(bans) == 1 and bans[0].endswith(f"lifeline: banned {attacker} for 300s"), bans
    guesses = edge.log_lines(rf"lifeline: auth failed for 1003 from {re.escape(attacker)}$")
    assert len(guesses) == 10, guesses  # sip.ban_after_failures
    # The real phone, from its own address, registers with the password the attacker never found.
    real = sip_endpoint.phone(
        "1003", CRACKABLE, domain=DOMAIN, registrar=f"sip:127.0.0.1:{edge.sip_port}",
        proxy=f"sip:127.0.0.1:{edge.sip_port};lr",
    )  # fmt: skip
    assert real.register() == 200
    # The banned address gets nothing at all, not even an answer to OPTIONS.
    with SipClient(server(edge), attacker) as again:
        uri = f"sip:127.0.0.1:{edge.sip_port}"
        assert again.final(again.request("OPTIONS", uri, from_uri=f"<{uri}>", to_uri=f"<{uri}>"), 1.0) is None
    # `lifeline status` shows the ban, until when, and the failed logins per extension.
    sip = edge.status()["sip"]
    ban = next(b for b in sip["edge"]["bans"] if b["address"] == attacker)
    assert 250 < ban["until"] - time.time() <= 300 and ban["bans"] == 1
    assert sip["edge"]["failed_logins"]["1003"] >= 10

    def ban_events() -> list[str]:
        return [e["message"] for e in edge.status()["events"] if e["kind"] == "sip" and attacker in e["message"]]

    deadline = time.monotonic() + 15  # the daemon reads Kamailio's bans every 5 s
    while not ban_events() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ban_events() and "banned after repeated failed logins" in ban_events()[0]


def test_guesses_relayed_to_the_cloud_ban_too_and_a_phone_refreshing_is_no_guess(
    sip_endpoint: SipEndpoint, cloud: LabCloud, lifeline: LifelineProcess
) -> None:
    # NORMAL: the cloud checks the passwords; what it refuses still counts here, per source.
    real = sip_endpoint.phone(
        "1002", CLOUD_PASSWORDS["1002"], domain=CLOUD_HOST, registrar=cloud.uri,
        proxy=f"sip:127.0.0.1:{lifeline.sip_port};lr",
    )  # fmt: skip
    for _ in range(12):  # more refreshes than failures that ban, each with its cached credentials
        assert real.register() == 200
    answered = 0
    with SipClient(server(lifeline), "127.0.0.61") as attacker:
        for guess in range(12):
            # Each of the first ten must be answered, through both Kamailios: a busy box gets 5 s for it.
            wait = 5.0 if guess < 10 else 1.0
            answer, _, _ = attacker.register("1001", f"guess-{guess}", CLOUD_HOST, timeout=wait, registrar=cloud.uri)
            if answer is None:
                break
            answered += 1
    assert answered == 10  # the cloud's 10th refusal banned the address: the 11th guess got nothing
    assert lifeline.wait_log(r"lifeline: banned 127\.0\.0\.61 for 300s$")
    assert not lifeline.log_lines(r"auth failed for 1002 from 127\.0\.0\.1$")
    assert real.register() == 200


# ------------------------------------------------------------------ replay


def test_a_replayed_register_authorization_is_refused(edge: LifelineProcess) -> None:
    with SipClient(server(edge), "127.0.0.31") as victim:
        ok, auth, _ = victim.register("1002", EXTENSIONS["1002"], DOMAIN)
        assert ok is not None and ok.code == 200 and auth is not None
    # The sniffed Authorization, from another port with a new Call-ID, then from the same address.
    for source in ("127.0.0.32", "127.0.0.31"):
        with SipClient(server(edge), source) as attacker:
            uri = f"sip:127.0.0.1:{edge.sip_port}"
            aor = "<sip:1002@" + DOMAIN + ">"
            replay = attacker.request("REGISTER", uri, from_uri=aor, to_uri=aor, headers=("Expires: 60", auth))
            answer = attacker.final(replay)
            assert answer is not None and answer.code == 401, answer
    assert "127.0.0.32" not in json.dumps(rpc(edge).call_blocking("ul.lookup", "location", "1002"))


def test_a_digest_for_another_request_uri_is_refused(edge: LifelineProcess) -> None:
    with SipClient(server(edge), "127.0.0.33") as client:
        uri = f"sip:127.0.0.1:{edge.sip_port}"
        aor = "<sip:1001@" + DOMAIN + ">"
        call_id = secrets.token_hex(8)
        first = client.final(client.request("REGISTER", uri, from_uri=aor, to_uri=aor, call_id=call_id))
        challenge = challenge_of(first) if first is not None else None
        assert challenge is not None, first
        elsewhere = authorization(challenge, "REGISTER", "sip:registrar.example.com", "1001", EXTENSIONS["1001"])
        text = client.request("REGISTER", uri, from_uri=aor, to_uri=aor, call_id=call_id, cseq=2, headers=(elsewhere,))
        answer = client.final(text)
        assert answer is not None and answer.code == 403, answer


def test_contacts_per_extension_are_capped(edge: LifelineProcess) -> None:
    codes = []
    for index in range(4):  # sip.max_contacts = 3 in this daemon
        with SipClient(server(edge), f"127.0.0.4{index}") as device:
            answer, _, _ = device.register("1001", EXTENSIONS["1001"], DOMAIN)
            codes.append(answer.code if answer else None)
    assert codes[:3] == [200, 200, 200] and codes[3] == 503, codes


def test_an_oversized_message_is_refused(edge: LifelineProcess) -> None:
    with SipClient(server(edge), "127.0.0.45") as client:
        uri = f"sip:1001@127.0.0.1:{edge.sip_port}"
        big = client.request("OPTIONS", uri, from_uri=f"<{uri}>", to_uri=f"<{uri}>", headers=("X-Pad: " + "a" * 20000,))
        answer = client.final(big)
        assert answer is not None and answer.code == 513, answer


# ------------------------------------------------------------------ identity


def test_a_display_name_does_not_make_a_caller_someone_else(
    sip_endpoint: SipEndpoint, edge: LifelineProcess, sim: SimThread
) -> None:
    ep = sip_endpoint
    bob = phone(ep, edge, "1002")  # national only; 1001 may call abroad
    dialled_before = sim.call(lambda: len(sim.sim.far_end.dialled))
    trick = bob.call(ABROAD, local_uri=f'"sip:1001@{DOMAIN}" <sip:1002@{DOMAIN}>')
    ep.wait_for(lambda: trick.state == "DISCONNECTED", 15, "the trick call to end")
    assert (trick.record.last_code, trick.record.last_reason) == (403, "International calls not allowed")
    forged = bob.call(ABROAD, headers=((HEADER, f"1001;sig={'0' * 64}"),))
    ep.wait_for(lambda: forged.state == "DISCONNECTED", 15, "the forged-stamp call to end")
    assert forged.record.last_code == 403
    assert sim.call(lambda: len(sim.sim.far_end.dialled)) == dialled_before  # the modem dialled nothing


def agent_contact(daemon: LifelineProcess) -> tuple[str, int]:
    """Where the trunk agent (extension 1009) registered: its own UDP port on loopback."""
    text = json.dumps(rpc(daemon).call_blocking("ul.lookup", "location", "1009"))
    found = re.search(r"sip:1009@(127\.0\.0\.1):(\d+)", text)
    assert found, text
    return found[1], int(found[2])


def test_an_invite_straight_to_the_agent_is_refused_and_logged(edge: LifelineProcess, sim: SimThread) -> None:
    agent = agent_contact(edge)
    dialled_before = sim.call(lambda: len(sim.sim.far_end.dialled))
    sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"
    with SipClient(agent, "127.0.0.1") as local:
        for stamp in (None, "wrong-key"):
            uri = f"sip:{ABROAD}@127.0.0.1:{agent[1]}"
            call_id = secrets.token_hex(8)
            headers = ["Content-Type: application/sdp"]
            if stamp is not None:  # a stamp as Kamailio would write it, signed with a guessed key
                headers.append(f"{HEADER}: 1001;sig={signature(stamp, call_id, '1001', ABROAD)}")
            invite = local.request(
                "INVITE", uri, from_uri=f"<sip:1001@{DOMAIN}>", to_uri=f"<{uri}>", call_id=call_id,
                headers=tuple(headers), body=sdp,
            )  # fmt: skip
            answer = local.final(invite, 5.0)
            assert answer is not None and answer.code == 403, answer
    assert len(edge.wait_log("refused an INVITE without Kamailio's caller stamp")) >= 2
    assert sim.call(lambda: len(sim.sim.far_end.dialled)) == dialled_before


# ------------------------------------------------------------------ relay


class Listener:
    """The 'arbitrary host' an open relay would reach: a UDP socket that counts what arrives."""

    def __init__(self, host: str = "127.0.0.99") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.setblocking(False)
        self.address = self.sock.getsockname()

    def received(self) -> list[bytes]:
        got = []
        while True:
            try:
                got.append(self.sock.recv(65535))
            except BlockingIOError:
                return got


@pytest.mark.parametrize("method", ["INVITE", "MESSAGE", "OPTIONS"])
@pytest.mark.parametrize("route", ["ours", "named"])
def test_the_route_trick_reaches_nothing(edge: LifelineProcess, method: str, route: str) -> None:
    target = Listener()
    try:
        host, port = target.address
        top = f"<sip:127.0.0.1:{edge.sip_port};lr>" if route == "ours" else "<sip:lifeline;lr>"
        with SipClient(server(edge), "127.0.0.51") as attacker:
            uri = f"sip:victim@{host}:{port}"
            request = attacker.request(
                method, uri, from_uri="<sip:anyone@example.com>", to_uri=f"<{uri}>", to_tag="abc123",
                headers=(f"Route: {top}",),
            )  # fmt: skip
            answer = attacker.final(request, 3.0)
        assert answer is not None and answer.code == 404, answer
        assert target.received() == []
    finally:
        target.sock.close()
