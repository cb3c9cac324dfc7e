"""A cloud in two regions, cut in namespaces: the secondary keeps the branch on the cloud; SURVIVAL needs both down."""

from __future__ import annotations

import time
from collections.abc import Callable

from gateway.lab.branch import BranchLab
from gateway.lab.cloud import LabCloud
from gateway.lab.phones import Phone, SipEndpoint, talk
from tests.net.conftest import registered_pair


def sbc_states(lab: BranchLab) -> list[str]:
    return [sbc["state"] for sbc in lab.status()["health"]["sbcs"]]


def wait_states(lab: BranchLab, wanted: list[str], timeout: float = 20) -> set[str]:
    """Wait until the SBCs show these states; returns every mode seen meanwhile."""
    modes: set[str] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = lab.status()
        modes.add(status["mode"]["mode"])
        if [sbc["state"] for sbc in status["health"]["sbcs"]] == wanted:
            return modes
        time.sleep(0.2)
    raise AssertionError(f"SBCs never became {wanted}: {lab.status()['health']}")


def call_through(cloud: LabCloud | None, ep: SipEndpoint, caller: Phone, callee: Phone, failure: str) -> None:
    """A call from caller to callee (answered, RTP both ways, hung up) that must go through this lab cloud."""
    assert cloud is not None
    used = cloud.transactions()
    talk(ep, caller, callee, rtp=True)
    assert cloud.transactions() > used, failure


def test_primary_region_down_the_secondary_carries_the_calls_and_both_down_is_survival(
    make_phones_branch: Callable[..., BranchLab], sip_endpoint: SipEndpoint
) -> None:
    # The lab's round trips are far below the fallback's floor, so each SBC gets the floor's wait for an
    # INVITE; 1 s (a probe's wait for an answer) rather than 300 ms, so that a busy box's stall does not
    # serve locally a call the secondary would have taken.
    lab = make_phones_branch({"fallback": {"floor_ms": 1000}}, regions=2)
    ep = sip_endpoint
    wait_states(lab, ["up", "up"])
    alice, bob = registered_pair(ep, lab)
    assert lab.cloud is not None and {"1001", "1002"} <= set(lab.cloud.bindings())

    # The primary region's SBC goes silent; its DNS and API stay up.
    lab.topology.outage("sip-primary")
    modes = wait_states(lab, ["down", "up"])
    assert modes == {"normal"}
    # The phones' next refresh reaches the secondary; their calls go through it, not through Lifeline alone.
    assert alice.register() == 200 and bob.register() == 200
    assert lab.cloud2 is not None and {"1001", "1002"} <= set(lab.cloud2.bindings())
    call_through(lab.cloud2, ep, alice, bob, "the call did not go through the secondary region")
    assert lab.status()["mode"]["mode"] == "normal"
    assert not [e for e in lab.mode_events() if "→ survival" in e["message"]]

    # The primary back; then every send to it fails at once (a dead route): the next call goes to the
    # secondary straight away, before any probe noticed, and is not served by Lifeline alone.
    lab.topology.restore()
    wait_states(lab, ["up", "up"])
    lab.topology.outage("send-error-primary")
    call_through(lab.cloud2, ep, alice, bob, "the call did not go to the secondary after the send error")
    lifeline = lab.lifeline
    assert lifeline is not None
    ep.wait_for(lambda: lifeline.logged("to the next cloud SBC"), 5, "the INVITE's move to the next SBC in the log")
    log = lifeline.log_path.read_text()
    assert "to the next cloud SBC" in log and "locally" not in log

    # Both regions gone: SURVIVAL, and the phones keep calling each other through Lifeline.
    lab.topology.outage("sip")
    lab.wait_mode("survival", 30)
    assert sbc_states(lab) == ["down", "down"]
    talk(ep, alice, bob, rtp=True)
