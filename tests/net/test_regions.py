"""A cloud in two regions, cut in namespaces: the secondary keeps the branch on the cloud; SURVIVAL needs both down."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from gateway.lab.branch import BranchLab
from gateway.lab.cloud import LabCloud
from gateway.lab.phones import Phone, SipEndpoint
from tests.net.conftest import lab_phone


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


def transactions(cloud: LabCloud | None) -> int:
    """Transactions a lab cloud handled statefully (INVITEs and their BYEs)."""
    assert cloud is not None
    stats: Any = cloud.rpc.call_blocking("tm.stats")
    return int(stats["total"])


def answered_call(ep: SipEndpoint, caller: Phone, callee: Phone) -> None:
    """caller calls callee, who answers; audio flows both ways; the callee hangs up."""
    before = len(callee.incoming)
    call = caller.call("1002")
    ep.wait_for(lambda: len(callee.incoming) > before or call.state == "DISCONNECTED", 15, "the callee to ring")
    assert len(callee.incoming) > before, f"the call failed: {call.record.last_code} {call.record.last_reason}"
    incoming = callee.incoming[-1]
    incoming.answer_with(200)
    ep.wait_for(lambda: call.state == "CONFIRMED" and incoming.state == "CONFIRMED", 15, "call confirmed")
    ra, rb = call.rtp_packets()[0], incoming.rtp_packets()[0]
    ep.wait_for(lambda: call.rtp_packets()[0] > ra + 10 and incoming.rtp_packets()[0] > rb + 10, 10, "RTP both ways")
    incoming.hang_up()
    ep.wait_for(lambda: call.state == "DISCONNECTED", 10, "the caller to see the hang-up")


def test_primary_region_down_the_secondary_carries_the_calls_and_both_down_is_survival(
    make_branch: Callable[..., BranchLab], in_phones_ns: Callable[[BranchLab], None], sip_endpoint: SipEndpoint
) -> None:
    lab = make_branch(regions=2)
    in_phones_ns(lab)
    ep = sip_endpoint
    wait_states(lab, ["up", "up"])
    alice, bob = lab_phone(ep, lab, "1001"), lab_phone(ep, lab, "1002")
    assert alice.register() == 200 and bob.register() == 200
    assert lab.cloud is not None and {"1001", "1002"} <= set(lab.cloud.bindings())

    # The primary region's SBC goes silent; its DNS and API stay up.
    lab.topology.outage("sip-primary")
    modes = wait_states(lab, ["down", "up"])
    assert modes == {"normal"}
    # The phones' next refresh reaches the secondary; their calls go through it, not through Lifeline alone.
    assert alice.register() == 200 and bob.register() == 200
    assert lab.cloud2 is not None and {"1001", "1002"} <= set(lab.cloud2.bindings())
    used = transactions(lab.cloud2)
    answered_call(ep, alice, bob)
    assert transactions(lab.cloud2) > used, "the call did not go through the secondary region"
    assert lab.status()["mode"]["mode"] == "normal"
    assert not [e for e in lab.mode_events() if "→ survival" in e["message"]]

    # The primary back; then every send to it fails at once (a dead route): the next call goes to the
    # secondary straight away, before any probe noticed, and is not served by Lifeline alone.
    lab.topology.restore()
    wait_states(lab, ["up", "up"])
    lab.topology.outage("send-error-primary")
    used = transactions(lab.cloud2)
    answered_call(ep, alice, bob)
    assert transactions(lab.cloud2) > used, "the call did not go to the secondary after the send error"
    assert lab.lifeline is not None
    log = lab.lifeline.log_path.read_text()
    assert "to the next cloud SBC" in log and "locally" not in log

    # Both regions gone: SURVIVAL, and the phones keep calling each other through Lifeline.
    lab.topology.outage("sip")
    lab.wait_mode("survival", 30)
    assert sbc_states(lab) == ["down", "down"]
    answered_call(ep, alice, bob)
