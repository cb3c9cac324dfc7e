"""Two Lifeline boxes as a pair ([ha]): registrations and bans replicated by Kamailio's DMQ, forgeries ignored.

Two real daemons (each with its Kamailio and keepalived) in namespaces of their own on one office LAN
(gateway.lab.pair_lab); pjsua2 phones and the attackers on that LAN. No cloud: both boxes in SURVIVAL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.ha.key import read_key
from gateway.lab.netns import inside
from gateway.lab.pair_lab import (
    ATTACKER,
    BOX_A,
    BOX_B,
    DMQ_PORT,
    FORGER,
    PHONES,
    VIP,
    PairLab,
    contacts,
    status_line_over_tcp,
    wait_until,
)
from gateway.lab.phones import Phone, SipEndpoint
from gateway.lab.sipclient import SipClient
from gateway.sip.dmq import SIGNATURE_HEADER, dmq_key
from tests.conftest import CLOUD_HOST, PASSWORDS, REALM

pytestmark = pytest.mark.usefixtures("fresh_phones")

BAN_AFTER = 3
_tags = itertools.count()


@pytest.fixture
def pair(sip_endpoint: SipEndpoint, extensions_csv: Path) -> Iterator[PairLab]:
    """The pair, not started; this thread (and pjsua2's sockets) on the LAN for the test."""
    tag = f"h{os.getpid() % 1000}{next(_tags) % 10}"
    # A short work directory: Kamailio's RPC socket path must fit a unix socket's ~100 bytes.
    workdir = Path(tempfile.mkdtemp(prefix=f"ll{tag}-"))
    lab = PairLab(workdir, tag, extensions_csv, REALM, ban_after_failures=BAN_AFTER)
    try:
        with inside(lab.ns["lan"]):
            yield lab
            sip_endpoint.reset()
    finally:
        lab.close()
        shutil.rmtree(workdir, ignore_errors=True)


def phone(ep: SipEndpoint, user: str, server: str = VIP) -> Phone:
    """A phone on the LAN that registers to and calls through server (the shared address by default)."""
    uri = f"sip:{server}:5060"
    # One domain for all: pjsua2 gives an incoming call to the account whose domain its To names.
    return ep.phone(user, PASSWORDS[user], domain=CLOUD_HOST, registrar=uri, proxy=uri + ";lr", host=PHONES)


def options(source: str, box: str) -> int | None:
    """The code of the box's answer to an OPTIONS from source, or None (dropped)."""
    with SipClient((box, 5060), local_ip=source) as client:
        answer = client.final(client.request("OPTIONS", f"sip:{box}", from_uri="<sip:x@x>", to_uri="<sip:x@x>"), 0.5)
        return None if answer is None else answer.code


def test_registrations_reach_the_peer_as_they_happen_and_when_it_starts(
    sip_endpoint: SipEndpoint, pair: PairLab
) -> None:
    ep = sip_endpoint
    pair.start(pair.a)
    # Alice registers while box B is down: B gets her binding from A when it starts (full sync).
    alice = phone(ep, "1001", BOX_A)
    assert alice.register() == 200
    pair.start(pair.b)
    wait_until(lambda: PHONES in contacts(pair.b, "1001"), "B to learn alice's binding at its start")
    # With both up, a registration at either box reaches the other.
    carol = phone(ep, "1003", BOX_A)
    assert carol.register() == 200
    wait_until(lambda: PHONES in contacts(pair.b, "1003"), "B to learn carol's binding")
    bob = phone(ep, "1002", BOX_B)
    assert bob.register() == 200
    wait_until(lambda: PHONES in contacts(pair.a, "1002"), "A to learn bob's binding")


def test_the_survivor_rings_a_phone_registered_at_the_box_that_failed(sip_endpoint: SipEndpoint, pair: PairLab) -> None:
    ep = sip_endpoint
    pair.start(pair.a)
    wait_until(lambda: pair.role(pair.a) == "active", "box A to take the shared address", timeout=20, step=0.2)
    pair.start(pair.b)
    # Both phones use the shared address only, as in the field: A has it, so A holds their registrations.
    alice = phone(ep, "1001")
    bob = phone(ep, "1002")
    assert alice.register() == 200
    assert bob.register() == 200
    wait_until(lambda: PHONES in contacts(pair.b, "1001"), "B to learn alice's binding")
    pair.a.stop()
    wait_until(lambda: pair.role(pair.b) == "active", "box B to take the shared address", timeout=20, step=0.2)
    call = bob.call("1001")  # neither phone registered again
    incoming = alice.ringing_call()
    incoming.answer_with(200)
    ep.wait_for(lambda: call.state == "CONFIRMED" and incoming.state == "CONFIRMED", what="the call confirmed")
    call.hang_up()
    ep.wait_for(lambda: incoming.state == "DISCONNECTED", what="alice to see the hang-up")


def test_an_address_banned_at_one_box_is_dropped_by_the_other(pair: PairLab) -> None:
    pair.start(pair.a)
    pair.start(pair.b)
    with SipClient((BOX_B, 5060), local_ip=ATTACKER) as at_b:
        answer, _, _ = at_b.register("1001", "not-the-password", BOX_B)
        assert answer is not None and answer.code == 401  # B answers the attacker: not banned yet
    with SipClient((BOX_A, 5060), local_ip=ATTACKER) as at_a:
        for _ in range(BAN_AFTER - 2):
            answer, _, _ = at_a.register("1001", "not-the-password", BOX_A)
            assert answer is not None and answer.code == 401
        # One failure was counted at B, the rest at A: only because the counters are shared does this one ban.
        at_a.register("1001", "still-not-it", BOX_A)
    assert options(ATTACKER, BOX_A) is None
    wait_until(lambda: options(ATTACKER, BOX_B) is None, "B to drop the banned address")
    assert options(FORGER, BOX_B) == 200  # the ban is the attacker's alone


def kdmq(source: str, box: str, number: str, contact: str, key: str | None = None) -> str | None:
    """A forged dmq_usrloc binding for number, over TCP from source; the status line of the answer, if any.

    key: sign it as a box's Kamailio does (gateway.sip.dmq) with this DMQ key; None: unsigned.
    """
    now = int(time.time())
    call_id = secrets.token_hex(12)
    body = json.dumps(
        {
            "action": 1,
            "aor": number,
            "ruid": "forged-" + secrets.token_hex(4),
            "c": contact,
            "received": "",
            "path": "",
            "callid": secrets.token_hex(8),
            "user_agent": "forged",
            "instance": "",
            "expires": now + 600,
            "cseq": 1,
            "flags": 0,
            "cflags": 0,
            "q": -1,
            "last_modified": now,
            "methods": 4294967295,
            "reg_id": 0,
        }
    )

    signature = ""
    if key is not None:
        digest = hashlib.sha256(body.encode()).hexdigest()
        mac = hmac.new(key.encode(), f"usrloc:{call_id}:1:{digest}".encode(), hashlib.sha256).digest()
        # Kamailio's crypto module writes base64url without the padding.
        signature = f"{SIGNATURE_HEADER}: {base64.urlsafe_b64encode(mac).decode().rstrip('=')}\r\n"

    def request(host: str, port: int) -> str:
        return (
            f"KDMQ sip:usrloc@{box}:{DMQ_PORT};transport=tcp SIP/2.0\r\n"
            f"Via: SIP/2.0/TCP {host}:{port};branch=z9hG4bK{secrets.token_hex(8)}\r\n"
            f"From: <sip:usrloc@{host}:{DMQ_PORT}>;tag={secrets.token_hex(4)}\r\n"
            f"To: <sip:usrloc@{box}:{DMQ_PORT}>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 KDMQ\r\nMax-Forwards: 1\r\n{signature}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}"
        )

    return status_line_over_tcp(source, box, DMQ_PORT, request, 1.0)


def test_kdmq_from_anyone_but_the_peer_changes_nothing(pair: PairLab) -> None:
    pair.start(pair.a)
    pair.start(pair.b)
    # From a third address on the LAN, to the replication socket and to the phones' socket: dropped.
    assert kdmq(FORGER, BOX_B, "1002", f"sip:1002@{FORGER}:5999") is None
    with SipClient((BOX_B, 5060), local_ip=FORGER) as client:
        assert (
            client.final(client.request("KDMQ", f"sip:usrloc@{BOX_B}", from_uri="<sip:u@x>", to_uri="<sip:u@x>"))
            is None
        )
    key = dmq_key(read_key(pair.key_file))
    with inside(pair.ns["a"]):
        # From the peer's own address, as a LAN host that took it would send: unsigned, or signed with
        # any key but the pair's, dropped too.
        assert kdmq(BOX_A, BOX_B, "1002", f"sip:1002@{FORGER}:5999") is None
        assert kdmq(BOX_A, BOX_B, "1002", f"sip:1002@{FORGER}:5999", secrets.token_hex(32)) is None
        # The very same message signed with the pair key is taken: the forgeries above were well-formed.
        answer = kdmq(BOX_A, BOX_B, "1003", f"sip:1003@{FORGER}:5999", key)
    assert answer is not None and " 200 " in answer, answer
    wait_until(lambda: FORGER in contacts(pair.b, "1003"), "the peer's binding on B")
    assert contacts(pair.b, "1002") == ""
    wait_until(lambda: pair.b.logged(f"KDMQ from {BOX_A} unsigned by the pair key dropped"), "B's log line")
