"""Two Lifeline boxes as a pair ([ha]): registrations and bans replicated by Kamailio's DMQ, forgeries ignored.

Two real daemons (each with its Kamailio and keepalived) in namespaces of their own on one office LAN
(gateway.lab.pair_lab); pjsua2 phones and the attackers on that LAN. No cloud: both boxes in SURVIVAL.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import secrets
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
    failed_logins,
    resynced_since_start,
    status_line_over_tcp,
)
from gateway.lab.phones import Phone, SipEndpoint
from gateway.lab.sipclient import SipClient
from gateway.lab.waits import wait_until
from gateway.sip.dmq import SETTLED_LOG, SIGNATURE_HEADER, START_SETTLED_S, dmq_key
from tests.conftest import CLOUD_HOST, PASSWORDS, hmac_b64url, short_pair_lab, tcp_request

pytestmark = pytest.mark.usefixtures("fresh_phones")

BAN_AFTER = 3
_tags = itertools.count()


@pytest.fixture
def pair(sip_endpoint: SipEndpoint, extensions_csv: Path) -> Iterator[PairLab]:
    """The pair, not started; this thread (and pjsua2's sockets) on the LAN for the test."""
    tag = f"h{os.getpid() % 1000}{next(_tags) % 10}"
    with short_pair_lab(tag, extensions_csv, ban_after_failures=BAN_AFTER) as lab, inside(lab.ns["lan"]):
        yield lab
        sip_endpoint.reset()


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


def synced_at_b_start(ep: SipEndpoint, pair: PairLab) -> None:
    """A starts, alice registers there while B is down, B starts and has her binding (its sync at start)."""
    pair.start(pair.a)
    alice = phone(ep, "1001", BOX_A)
    assert alice.register() == 200
    pair.start(pair.b)
    wait_until(lambda: PHONES in contacts(pair.b, "1001"), "B to learn alice's binding at its start")


def test_registrations_reach_the_peer_as_they_happen_and_when_it_starts(
    sip_endpoint: SipEndpoint, pair: PairLab
) -> None:
    ep = sip_endpoint
    synced_at_b_start(ep, pair)
    # With both up, a registration at either box reaches the other.
    carol = phone(ep, "1003", BOX_A)
    assert carol.register() == 200
    wait_until(lambda: PHONES in contacts(pair.b, "1003"), "B to learn carol's binding")
    bob = phone(ep, "1002", BOX_B)
    assert bob.register() == 200
    wait_until(lambda: PHONES in contacts(pair.a, "1002"), "A to learn bob's binding")


# The first bytes of a KDMQ carrying a binding change: dmq_usrloc's messages go to sip:usrloc@ (the
# peer's name is the Request-URI's user); the pings go to sip:notification_peer@ and must pass.
BINDING_KDMQ = b"KDMQ sip:usrloc@"


def lose_binding_changes_at(lab: PairLab, role: str, peer: str) -> str:
    """Reset the peer's TCP connection when a binding change from it arrives (lost, not resent); the table."""
    table = "lldmqloss"
    match = f"@ih,0,{8 * len(BINDING_KDMQ)} 0x{BINDING_KDMQ.hex()}"
    rule = f"ip saddr {peer} tcp dport {DMQ_PORT} {match} counter reject with tcp reset"
    chain = f"chain input {{\n type filter hook input priority -10;\n {rule}\n}}"  # nft wants a newline after reject
    lab.run(role, "nft", "-f", "-", input=f"table inet {table} {{\n{chain}\n}}\n")
    return table


def test_a_binding_the_peer_could_not_send_in_a_start_reaches_the_box_when_its_start_settles(
    sip_endpoint: SipEndpoint, pair: PairLab
) -> None:
    # What the peer sends in the half minute after a box starts can be lost (its stale pings mark the box
    # inactive, README); here a binding change is lost for sure, and only the settled resync can bring it.
    # Alice's binding on B means B's sync at start is through (it would bring carol's too, were she
    # registered before it).
    synced_at_b_start(sip_endpoint, pair)
    table = lose_binding_changes_at(pair, "b", BOX_A)
    assert phone(sip_endpoint, "1003", BOX_A).register() == 200  # carol
    wait_until(
        lambda: "packets 0 " not in pair.run("b", "nft", "list", "table", "inet", table).stdout, "the reset", 10, 0.1
    )
    pair.run("b", "nft", "delete", "table", "inet", table)

    def carol_on_b() -> bool:
        # Looked at in this order: the flag is set before the resync is sent, so carol seen first and
        # the flag still 0 after means she came some other way.
        arrived = PHONES in contacts(pair.b, "1003")
        assert not arrived or resynced_since_start(pair.b), "carol's binding reached B before the resync"
        return arrived

    wait_until(carol_on_b, "B's start to settle and B to ask A for carol's binding", START_SETTLED_S + 20, 0.2)
    assert pair.b.wait_log(SETTLED_LOG, 10)
    # The settled resync did it: no silence of A's pings made B ask (route[HA_PEER_HEARD]).
    assert not pair.b.logged("heard after a silence")


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
    # B's DMQ sends A nothing before it has A as active (its first ping answered, within seconds).
    wait_until(
        lambda: pair.b.status()["ha"]["peer_health"]["replication"] == "active", "B's DMQ to have A as active", 15, 0.2
    )
    with SipClient((BOX_B, 5060), local_ip=ATTACKER) as at_b:
        answer, _, _ = at_b.register("1001", "not-the-password", BOX_B)
        assert answer is not None and answer.code == 401  # B answers the attacker: not banned yet
    # B's count reaches A over DMQ: waited for, so A's own count below is the rest.
    wait_until(lambda: failed_logins(pair.a, ATTACKER) == 1, "B's failed login counted at A", 15, 0.1)
    with SipClient((BOX_A, 5060), local_ip=ATTACKER) as at_a:
        for _ in range(BAN_AFTER - 2):
            answer, _, _ = at_a.register("1001", "not-the-password", BOX_A)
            assert answer is not None and answer.code == 401
        # One failure was counted at B, the rest at A: only because the counters are shared does this one ban.
        at_a.register("1001", "still-not-it", BOX_A)
    assert options(ATTACKER, BOX_A) is None
    wait_until(lambda: options(ATTACKER, BOX_B) is None, "B to drop the banned address")
    assert options(FORGER, BOX_B) == 200  # the ban is the attacker's alone


def kdmq(source: str, box: str, number: str, contact: str, key: str | None = None, wait_s: float = 1.0) -> str | None:
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

    signature: tuple[str, ...] = ()
    if key is not None:
        digest = hashlib.sha256(body.encode()).hexdigest()
        signature = (f"{SIGNATURE_HEADER}: {hmac_b64url(key.encode(), f'usrloc:{call_id}:1:{digest}')}",)

    def request(host: str, port: int) -> str:
        uri, to_uri = f"sip:usrloc@{box}:{DMQ_PORT};transport=tcp", f"<sip:usrloc@{box}:{DMQ_PORT}>"
        headers = (*signature, "Content-Type: application/json")
        return tcp_request(
            "KDMQ", uri, (host, port), f"<sip:usrloc@{host}:{DMQ_PORT}>", to_uri, call_id, 1, headers, body
        )

    return status_line_over_tcp(source, box, DMQ_PORT, request, wait_s)


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
        answer = kdmq(BOX_A, BOX_B, "1003", f"sip:1003@{FORGER}:5999", key, wait_s=5.0)
    assert answer is not None and " 200 " in answer, answer
    wait_until(lambda: FORGER in contacts(pair.b, "1003"), "the peer's binding on B")
    assert contacts(pair.b, "1002") == ""
    wait_until(lambda: pair.b.logged(f"KDMQ from {BOX_A} unsigned by the pair key dropped"), "B's log line")
