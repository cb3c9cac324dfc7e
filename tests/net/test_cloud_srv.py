"""cloud.sbc as a DNS SRV name (RFC 3263), served by the lab cloud's dnsmasq: the targets are the SBC list.

sbc = "sip:srv.cloud.test" (no port): the daemon asks for _sip._udp.srv.cloud.test and relays to its
targets in priority order, exactly as if the list had been written; a new answer is used while running;
DNS going away keeps the last good list; a name without SRV records is its own address on 5060.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from gateway.lab.branch import REALM, BranchLab
from gateway.lab.phones import SipEndpoint
from tests.net.conftest import registered_pair
from tests.net.test_regions import call_through, wait_states

SRV = "_sip._udp.srv.cloud.test"
PRIMARY, SECONDARY = "sip:sbc.cloud.test:5060", "sip:sbc2.cloud.test:5060"
SECOND_HOST = "--host-record=sbc2.cloud.test,10.201.3.3"  # the lab's second region (BranchLab(regions=2))
BOTH = (
    SECOND_HOST,
    f"--srv-host={SRV},sbc.cloud.test,5060,10,100",  # priority 10: the primary region
    f"--srv-host={SRV},sbc2.cloud.test,5060,20,100",
)


def srv_cloud(sbc: str = "sip:srv.cloud.test") -> dict[str, Any]:
    """The [cloud] section: an SRV name, looked up again every second (the lab's records say 300 s)."""
    return {"cloud": {"sbc": sbc, "realm": REALM, "srv_refresh_min_s": 1, "srv_refresh_max_s": 1}}


def shown(lab: BranchLab) -> list[tuple[str, str]]:
    """Each SBC in the status, in order, with where it came from."""
    return [(sbc["uri"], sbc["source"]) for sbc in lab.status()["health"]["sbcs"]]


def in_branch(lab: BranchLab, *args: str) -> str:
    """`lifeline ARGS` run inside the branch's namespace (its resolver is the lab cloud's DNS)."""
    assert lab.lifeline is not None
    cmd = [*lab.topology.exec_prefix("br"), sys.executable, "-m", "gateway", "--config", str(lab.lifeline.config_path)]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=60).stdout


def test_an_srv_name_gives_both_regions_in_order_and_the_secondary_carries_calls_when_the_primary_is_cut(
    make_branch: Callable[..., BranchLab], in_phones_ns: Callable[[BranchLab], None], sip_endpoint: SipEndpoint
) -> None:
    lab = make_branch(srv_cloud(), regions=2, dns=BOTH)
    assert shown(lab) == [(PRIMARY, f"SRV {SRV}"), (SECONDARY, f"SRV {SRV}")]
    wait_states(lab, ["up", "up"])
    # What an installer reads: each SBC with its source, and the doctor's line for the lookup.
    assert f"sbc {SECONDARY}: up" in in_branch(lab, "status") and f"(from SRV {SRV})" in in_branch(lab, "status")
    checks = {c["name"]: c for c in json.loads(in_branch(lab, "doctor", "--json"))["checks"]}
    assert checks["cloud-srv"]["verdict"] == "pass" and PRIMARY in checks["cloud-srv"]["detail"]
    assert checks["cloud-sip-2"]["detail"].startswith(f"{SECONDARY} (from SRV {SRV})")

    in_phones_ns(lab)
    ep = sip_endpoint
    alice, bob = registered_pair(ep, lab)
    call_through(lab.cloud, ep, alice, bob, "the first SRV target (priority 10) did not carry the call")

    # The primary region's SBC goes silent: the secondary from the SRV answer takes the calls, no SURVIVAL.
    lab.topology.outage("sip-primary")
    assert wait_states(lab, ["down", "up"]) == {"normal"}
    assert alice.register() == 200 and bob.register() == 200
    call_through(lab.cloud2, ep, alice, bob, "the call did not go through the secondary region")
    assert not [e for e in lab.mode_events() if "→ survival" in e["message"]]


def test_a_changed_srv_answer_is_used_while_running(
    make_branch: Callable[..., BranchLab], in_phones_ns: Callable[[BranchLab], None], sip_endpoint: SipEndpoint
) -> None:
    lab = make_branch(srv_cloud(), regions=2, dns=(SECOND_HOST, f"--srv-host={SRV},sbc.cloud.test,5060,10,100"))
    assert shown(lab) == [(PRIMARY, f"SRV {SRV}")]
    wait_states(lab, ["up"])
    # The cloud moves this office to the other region: DNS now names only sbc2.
    lab.set_dns((SECOND_HOST, f"--srv-host={SRV},sbc2.cloud.test,5060,10,100"))
    deadline = time.monotonic() + 30
    while [uri for uri, _ in shown(lab)] != [SECONDARY]:
        assert time.monotonic() < deadline, f"the new SRV answer was never used: {shown(lab)}"
        time.sleep(0.2)
    wait_states(lab, ["up"])
    in_phones_ns(lab)
    ep = sip_endpoint
    alice, bob = registered_pair(ep, lab)
    assert lab.cloud2 is not None and {"1001", "1002"} <= set(lab.cloud2.bindings())
    call_through(lab.cloud2, ep, alice, bob, "the call did not go to the new SRV target")
    assert lab.status()["mode"]["mode"] == "normal"


def test_dns_cut_after_the_start_keeps_the_last_good_list_and_the_cloud(
    make_branch: Callable[..., BranchLab], in_phones_ns: Callable[[BranchLab], None], sip_endpoint: SipEndpoint
) -> None:
    lab = make_branch(srv_cloud(), regions=2, dns=BOTH)
    wait_states(lab, ["up", "up"])
    lab.topology.outage("dns")
    assert lab.lifeline is not None
    lab.lifeline.wait_log("keeping the last good SBC list", 30)
    assert [uri for uri, _ in shown(lab)] == [PRIMARY, SECONDARY]
    assert wait_states(lab, ["up", "up"]) == {"normal"}
    in_phones_ns(lab)
    ep = sip_endpoint
    alice, bob = registered_pair(ep, lab)
    call_through(lab.cloud, ep, alice, bob, "the call did not go through the cloud's primary while DNS is down")

    # A restart while DNS is still down: the last good list and addresses from the store, still the cloud.
    assert lab.lifeline is not None and lab.lifeline.stop() == 0
    lab.lifeline.start(timeout=60)
    assert shown(lab) == [(PRIMARY, f"SRV {SRV}"), (SECONDARY, f"SRV {SRV}")]
    assert wait_states(lab, ["up", "up"]) == {"normal"}
    assert alice.register() == 200
    assert not [e for e in lab.mode_events() if "→ survival" in e["message"]]


def test_a_name_without_srv_records_is_its_own_address_on_5060(
    make_branch: Callable[..., BranchLab], in_phones_ns: Callable[[BranchLab], None], sip_endpoint: SipEndpoint
) -> None:
    lab = make_branch(srv_cloud("sip:sbc.cloud.test"))
    [(uri, source)] = shown(lab)
    assert uri == "sip:sbc.cloud.test" and source.startswith("address of sbc.cloud.test (no SRV records")
    wait_states(lab, ["up"])
    checks = {c["name"]: c for c in json.loads(in_branch(lab, "doctor", "--json"))["checks"]}
    assert checks["cloud-srv"]["verdict"] == "warn" and "publish SRV records" in checks["cloud-srv"]["fix"]
    in_phones_ns(lab)
    ep = sip_endpoint
    alice, bob = registered_pair(ep, lab)
    call_through(lab.cloud, ep, alice, bob, "the call did not go through the cloud")
