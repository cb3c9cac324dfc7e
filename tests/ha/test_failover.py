"""Pair mode with real keepalived: the shared address moves to the healthy box and SIP follows it.

Two real daemons (Kamailio and keepalived each) in namespaces of their own on one LAN bridge
(gateway.lab.pair_lab); the tests speak SIP from the phones' namespace to the shared address.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.lab.daemon import LifelineProcess
from gateway.lab.netns import inside
from gateway.lab.pair_lab import PHONES, VIP, PairLab, rpc
from gateway.lab.sipclient import SipClient
from gateway.lab.waits import wait_until
from tests.conftest import REALM

FAILOVER_S = 10  # three missed adverts (1 s each) plus skew; the check's two failures at 2 s: well inside
_tags = itertools.count()


@pytest.fixture
def pair(extensions_csv: Path) -> Iterator[PairLab]:
    """Both boxes running, a (the higher priority, started first) holding the shared address."""
    tag = f"k{os.getpid() % 1000}{next(_tags) % 10}"
    workdir = Path(tempfile.mkdtemp(prefix=f"ll{tag}-"))  # short: unix socket paths live in it
    lab = PairLab(workdir, tag, extensions_csv, REALM)
    try:
        lab.start(lab.a)
        wait_until(lambda: holders(lab) == ["a"], "box a to take the shared address", FAILOVER_S, 0.05)
        lab.start(lab.b)
        wait_until(lambda: lab.role(lab.b) == "standby", "box b to be standby", FAILOVER_S, 0.05)
        yield lab
    finally:
        lab.close()
        shutil.rmtree(workdir, ignore_errors=True)


def holders(lab: PairLab) -> list[str]:
    """The boxes whose LAN interface carries the shared address."""
    found = []
    for role in ("a", "b"):
        links = json.loads(lab.run(role, "ip", "-j", "addr", "show").stdout)
        if any(info.get("local") == VIP for link in links for info in link.get("addr_info", [])):
            found.append(role)
    return found


def options_to_vip(lab: PairLab) -> int | None:
    """The code of the answer to a phone's OPTIONS to the shared address, or None."""
    with inside(lab.ns["lan"]), SipClient((VIP, 5060), local_ip=PHONES) as client:
        request = client.request("OPTIONS", f"sip:{VIP}", from_uri="<sip:p@lan>", to_uri=f"<sip:{VIP}>")
        answer = client.final(request, 3.0)  # every caller wants an answer: a busy box gets 3 s
        return None if answer is None else answer.code


def kamailio_group(box: LifelineProcess) -> int:
    """The process group of the box's Kamailio (its main process leads it)."""
    return int(box.status()["sip"]["kamailio"]["pid"])


def test_one_box_holds_the_address_and_status_shows_both_roles(pair: PairLab) -> None:
    assert holders(pair) == ["a"]
    assert options_to_vip(pair) == 200
    a, b = pair.a.status()["ha"], pair.b.status()["ha"]
    assert (a["role"], a["peer"], b["role"], b["peer"]) == ("active", "10.203.1.72", "standby", "10.203.1.71")
    events = [e["message"] for e in pair.a.status()["events"] if e["kind"] == "ha"]
    assert "pair: this box is active (was standby); shared address 10.203.1.70/24" in events
    text = pair.b.cli("status").stdout
    assert "pair:          standby, shared address 10.203.1.70/24, peer 10.203.1.71" in text
    # Replies and in-dialog requests come to whichever box holds the address: every SIP socket names it.
    sockets = rpc(pair.b).call_blocking("corex.list_sockets")
    named = {(x["PROTO"], x["NAME"], x["PORT"]): x["ADVERTISE"] for x in sockets if x["PORT"] == "5060"}
    assert named == {
        ("udp", "10.203.1.72", "5060"): VIP,
        ("udp", VIP, "5060"): "-",
        ("tcp", "10.203.1.72", "5060"): VIP,
        ("tcp", VIP, "5060"): "-",
    }
    # The doctor on box b, where an installer runs it: on the LAN, so it asks box a's Kamailio itself.
    doctor = [sys.executable, "-m", "gateway", "--config", str(pair.b.config_path), "doctor", "--json"]
    done = subprocess.run(["ip", "netns", "exec", pair.ns["b"], *doctor], capture_output=True, text=True, timeout=60)
    line = next(check for check in json.loads(done.stdout)["checks"] if check["name"] == "pair")
    assert line["verdict"] == "pass", line
    assert "this box is standby" in line["detail"] and "peer 10.203.1.71's Kamailio answers" in line["detail"]


def test_killing_every_process_of_the_active_box_moves_the_address_and_sip_to_the_other(pair: PairLab) -> None:
    pair.power_cut("a")  # the peer must notice by itself: no SIGTERM, no goodbye advert
    took = wait_until(lambda: "b" in holders(pair), "box b to take the shared address", FAILOVER_S, 0.05)
    assert pair.role(pair.b) == "active"
    # Nothing of box a runs (its interface may keep the address: nobody is left to remove it),
    # so the answer is box b's Kamailio: b's gratuitous ARPs moved the phones' neighbour entry.
    wait_until(lambda: options_to_vip(pair) == 200, "an OPTIONS to the shared address answered", 5, 0.05)
    print(f"address moved {took:.1f} s after box a was killed")


def test_the_active_boxs_link_going_down_moves_the_address_to_the_other(pair: PairLab) -> None:
    link = pair.ns["a"] + "0"  # the box's end of its veth to the LAN bridge (gateway.lab.pair_lab)
    pair.run("a", "ip", "link", "set", link, "down")
    took = wait_until(lambda: holders(pair) == ["b"], "the shared address on box b alone", FAILOVER_S, 0.05)
    assert pair.role(pair.a) == "fault" and pair.role(pair.b) == "active"
    wait_until(lambda: options_to_vip(pair) == 200, "an OPTIONS to the shared address answered", 5, 0.05)
    print(f"address moved {took:.1f} s after box a's link went down")


def test_a_box_whose_kamailio_stops_answering_fails_its_check_and_gives_the_address_away(pair: PairLab) -> None:
    assert pair.a.cli("ha", "check").returncode == 0
    group = kamailio_group(pair.a)
    os.killpg(group, signal.SIGSTOP)  # alive (no restart by the daemon) but answering nothing
    try:
        failed = pair.a.cli("ha", "check", check=False)
        assert failed.returncode == 1 and "kamailio: no reply" in failed.stderr
        wait_until(lambda: holders(pair) == ["b"], "the shared address on box b alone", FAILOVER_S, 0.05)
        assert pair.role(pair.a) == "fault"
        wait_until(lambda: options_to_vip(pair) == 200, "box b's answer on the shared address", 5, 0.05)
    finally:
        os.killpg(group, signal.SIGCONT)
    # Well again, box a stays standby (nopreempt): the phones are not moved a second time.
    wait_until(lambda: pair.role(pair.a) == "standby", "box a standby again", FAILOVER_S, 0.05)
    assert holders(pair) == ["b"] and options_to_vip(pair) == 200


def test_the_daemon_restarts_a_keepalived_that_died_and_the_pair_settles_on_one_holder(pair: PairLab) -> None:
    dead = pair.a.status()["ha"]["keepalived"]["pid"]
    os.killpg(dead, signal.SIGKILL)  # keepalived and its VRRP child: the address is left behind on box a

    def restarted() -> bool:
        keepalived = pair.a.status()["ha"]["keepalived"]
        return bool(keepalived["running"] and keepalived["pid"] != dead and keepalived["restarts"] == 1)

    wait_until(restarted, "box a's daemon to restart keepalived", FAILOVER_S, 0.05)
    # The new keepalived removes the stale address; one of the two boxes holds it, the other stands by.
    wait_until(lambda: len(holders(pair)) == 1, "one holder of the shared address", FAILOVER_S, 0.05)
    roles = {pair.role(pair.a), pair.role(pair.b)}
    assert roles == {"active", "standby"} and options_to_vip(pair) == 200
