"""Split brain: the link between the two boxes cut while the phones still see both, then healed.

Real daemons (Kamailio, keepalived) in namespaces (gateway.lab.pair_lab), pjsua2 phones on the LAN and
the reference webhook receiver there. Cut off from each other, both boxes take the shared address (VRRP
cannot tell a dead peer from a silent one) and each serves the phones that reach it; healed, the pair
settles on one holder, the phones' ARP follows it, each box learns the registrations the other took,
and every call of the split reaches the sink once.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.cdr.labsink import LabWebhookReceiver, ThreadedReceiver
from gateway.lab.netns import inside
from gateway.lab.pair_lab import BOX_A, BOX_B, PHONES, VIP, PairLab, contacts, rpc
from gateway.lab.phones import Phone, PhoneCall, SipEndpoint
from gateway.lab.waits import wait_until
from tests.cdr.helpers import new_secret
from tests.conftest import CLOUD_HOST, PASSWORDS, REALM
from tests.ha.test_failover import holders, options_to_vip

pytestmark = pytest.mark.usefixtures("fresh_phones")

FAILOVER_S = 10  # three missed adverts plus skew (tests/ha/test_failover.py)
SETTLE_S = 10  # healed: the lower box steps down on the higher one's next advert (well under a second)
RESYNC_S = 15  # healed: the peer's next DMQ ping (every 5 s) ends a silence: each box asks for everything
DMQ_NOTICE_S = 25  # a ping goes unanswered: TCP gives up connecting after 10 s
ROLE_S = 10  # the notify line follows the address within milliseconds; each look is two CLI runs (~1 s busy)
ARP_S = 2  # the re-announcement is immediate; an entry left to time out takes 5 s or more
SINK_PORT = 8098  # on the LAN bridge of this test's own namespaces
_tags = itertools.count()


@contextlib.contextmanager
def pair_and_sink(ep: SipEndpoint, extensions_csv: Path) -> Iterator[tuple[PairLab, LabWebhookReceiver]]:
    """Both boxes up (A active, B standby), this thread and the sink on the LAN."""
    tag = f"s{os.getpid() % 1000}{next(_tags) % 10}"
    workdir = Path(tempfile.mkdtemp(prefix=f"ll{tag}-"))  # short: unix socket paths live in it
    secret = new_secret()
    webhook = {"url": f"http://{PHONES}:{SINK_PORT}/cdr", "secret": secret, "timeout_s": 2.0}
    cdr = {"ring_timeout_s": 5, "interval_s": 0.5, "backoff_base_s": 0.2, "backoff_max_s": 1.0, "webhook": webhook}
    lab = PairLab(workdir, tag, extensions_csv, REALM, cdr=cdr)
    try:
        lab.start(lab.a)
        wait_until(lambda: holders(lab) == ["a"], "box A to take the shared address", FAILOVER_S, 0.05)
        lab.start(lab.b)
        wait_until(lambda: lab.role(lab.b) == "standby", "box B to be standby", FAILOVER_S, 0.05)
        with inside(lab.ns["lan"]), ThreadedReceiver(LabWebhookReceiver(secret, host=PHONES, port=SINK_PORT)) as sink:
            yield lab, sink
            ep.reset()
    finally:
        lab.close()
        shutil.rmtree(workdir, ignore_errors=True)


def phone_at(ep: SipEndpoint, user: str, server: str) -> Phone:
    """A desk phone whose registrar and outbound proxy is server (a box's own address, or the shared one)."""
    uri = f"sip:{server}:5060"
    return ep.phone(user, PASSWORDS[user], domain=CLOUD_HOST, registrar=uri, proxy=uri + ";lr", host=PHONES)


def talk_and_hang_up(ep: SipEndpoint, caller: Phone, callee: Phone) -> tuple[str, float]:
    """caller calls callee, who answers; caller hangs up. The call's Call-ID and when it ended."""
    before = len(callee.incoming)
    call = caller.call(callee.user)
    ep.wait_for(lambda: len(callee.incoming) > before or call.state == "DISCONNECTED", 10, f"{callee.user} to ring")
    assert len(callee.incoming) > before, f"the call failed: {call.record.last_code} {call.record.last_reason}"
    incoming: PhoneCall = callee.incoming[-1]
    incoming.answer_with(200)
    ep.wait_for(lambda: call.state == "CONFIRMED" and incoming.state == "CONFIRMED", 10, "the call answered")
    call.hang_up()
    ep.wait_for(lambda: incoming.state == "DISCONNECTED", 10, f"{callee.user} to get the BYE")
    return call.call_id_string, time.time()


def records_of(lab: PairLab, role: str, call_id: str) -> list[dict[str, Any]]:
    """The box's call records of call_id (`lifeline cdr list --json`)."""
    box = lab.a if role == "a" else lab.b
    return [r for r in json.loads(box.cli("cdr", "list", "--json").stdout) if r["call_id"] == call_id]


def at_sink(sink: LabWebhookReceiver, call_id: str) -> list[dict[str, Any]]:
    return [r for r in list(sink.records.values()) if r["call_id"] == call_id]


def dmq_sees(lab: PairLab, role: str, peer: str) -> str:
    """The peer's state in the box's DMQ node list: active, or pending once its pings go unanswered."""
    nodes = rpc(lab.a if role == "a" else lab.b).call_blocking("dmq.list_nodes")
    states = {str(node.get("status")) for node in nodes if not node.get("local") and node.get("host") == peer}
    return "active" if "active" in states else ",".join(sorted(states))


def roles(lab: PairLab) -> tuple[str | None, str | None]:
    """Each box's part in the pair as its status says."""
    return lab.role(lab.a), lab.role(lab.b)


def mac_of_vip_on_the_lan(lab: PairLab) -> str | None:
    """The link address the phones' namespace sends the shared address's packets to, if it has one."""
    with contextlib.suppress(Exception):
        (entry,) = json.loads(lab.run("lan", "ip", "-j", "neigh", "show", VIP).stdout)
        return str(entry.get("lladdr"))
    return None


def mac_of(lab: PairLab, role: str) -> str:
    """The box's LAN interface's link address."""
    (link,) = json.loads(lab.run(role, "ip", "-j", "link", "show", lab.ns[role] + "0").stdout)
    return str(link["address"])


def test_a_split_brain_ends_with_one_active_box_both_boxes_registrations_and_every_record_once(
    sip_endpoint: SipEndpoint, extensions_csv: Path
) -> None:
    ep = sip_endpoint
    with pair_and_sink(ep, extensions_csv) as (lab, sink):
        carol = phone_at(ep, "1003", VIP)
        assert carol.register() == 200
        wait_until(lambda: PHONES in contacts(lab.b, "1003"), "B to learn carol's binding")

        lab.cut_between()
        # VRRP cannot tell a silent peer from a dead one: B takes the address too. Both are active.
        wait_until(lambda: holders(lab) == ["a", "b"], "both boxes to hold the shared address", FAILOVER_S, 0.05)
        # keepalived tells the daemon through its notify FIFO just after it sets the address.
        wait_until(lambda: roles(lab) == ("active", "active"), "both boxes to say active", ROLE_S, 0.05)

        # Once A's DMQ has given B up (its pings unanswered), A does not even try to send a change to B:
        # only a resync after the heal can bring B what A takes from now on.
        wait_until(lambda: dmq_sees(lab, "a", BOX_B) != "active", "A's DMQ to give B up", DMQ_NOTICE_S, 0.2)
        # Each box serves the phones that reach it: alice registers at A, bob at B; neither box hears of
        # the other's registration (the replication is cut too), and each answers and records its call.
        alice, bob = phone_at(ep, "1001", BOX_A), phone_at(ep, "1002", BOX_B)
        assert alice.register() == 200 and bob.register() == 200
        assert contacts(lab.b, "1001") == "" and contacts(lab.a, "1002") == ""
        via_a, _ = talk_and_hang_up(ep, alice, carol)
        via_b, b_ended = talk_and_hang_up(ep, bob, carol)
        wait_until(lambda: bool(records_of(lab, "a", via_a)), "A's record of alice's call", 10, 0.2)
        wait_until(lambda: bool(records_of(lab, "b", via_b)), "B's record of bob's call", 10, 0.2)

        # The phones' ARP follows the last gratuitous ARP: B's, as it took the address; the VIP is B's now.
        assert options_to_vip(lab) == 200 and mac_of_vip_on_the_lan(lab) == mac_of(lab, "b")

        lab.heal_between()
        healed = time.monotonic()
        # The higher priority wins (RFC 5798 6.4.3: a master hearing a higher priority steps down;
        # nopreempt only keeps a backup from taking over): A keeps the address, B stands by.
        settled = wait_until(lambda: holders(lab) == ["a"], "the shared address on box A alone", SETTLE_S, 0.02)
        # The phones' neighbour entry follows A at once. B's gratuitous ARPs of the split pointed it at B,
        # which now drops what comes for the address; left alone, the entry would only time out after
        # several seconds (gateway/ha/keepalived.conf.tmpl: vrrp_higher_prio_send_advert).
        wait_until(lambda: mac_of_vip_on_the_lan(lab) == mac_of(lab, "a"), "the LAN's ARP entry on A", ARP_S, 0.02)
        wait_until(lambda: roles(lab) == ("active", "standby"), "A to say active and B standby", ROLE_S, 0.05)
        assert options_to_vip(lab) == 200

        # Each box learns the registrations the other took during the split (DMQ asks for all again). B has
        # what A took at once (A's DMQ reconnects); A gets what B took maybe later, see the end.
        wait_until(lambda: PHONES in contacts(lab.b, "1001"), "B to learn alice's binding", RESYNC_S, 0.1)
        resynced = time.monotonic() - healed

        # Records leave in NORMAL; each box delivers its own outbox and the sink has each call once.
        lab.a.set_mode("normal")
        lab.b.set_mode("normal")
        wait_until(lambda: all(at_sink(sink, c) for c in (via_a, via_b)), "both records at the sink", 30, 0.2)
        (of_a,), (of_b,) = at_sink(sink, via_a), at_sink(sink, via_b)
        assert (of_a["from"]["number"], of_a["to"]["number"]) == ("1001", "1003")
        assert (of_b["disposition"], of_b["sip_code"]) == ("answered", 200)
        end = datetime.fromisoformat(of_b["end"].replace("Z", "+00:00")).timestamp()
        assert b_ended - 5 <= end <= b_ended + 0.5, of_b  # the end the phones saw, not a sweep's guess
        # Not asserted: A's record of alice's call says no_answer 480 although carol answered. Every
        # socket advertises the shared address in Via, so carol's 200 went to the address, which the
        # LAN's ARP put at B during the split; B passed it on statelessly and A's INVITE timed out.
        assert len(sink.records) == 2
        # Not asserted (README: split brain, a known gap): B's registrations from the split reaching A. B's
        # connection to A stays established through the cut with data queued in B's kernel, which resends
        # it only at TCP's backed-off retransmission times after the heal: seconds in some runs, minutes in others.
        print(f"healed: one holder after {settled:.1f} s; A's registrations at B after {resynced:.1f} s")
