"""A cloud SBC that names itself (its Record-Route has its host name, as many SBCs do) while DNS is down.

Lifeline resolves cloud.sbc's names itself and hands Kamailio addresses: an in-dialog request whose
next hop is the SBC's name must not wait on the system resolver, which is what a DNS outage breaks.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.lab.branch import SBC_NAME, BranchLab
from gateway.lab.phones import SipEndpoint
from tests.net.conftest import lab_phone


def test_a_call_answered_while_dns_is_down_is_acknowledged_and_hung_up_through_the_sbc_by_its_name(
    make_branch: Callable[..., BranchLab], in_phones_ns: Callable[[BranchLab], None], sip_endpoint: SipEndpoint
) -> None:
    lab = make_branch()
    in_phones_ns(lab)
    ep = sip_endpoint
    cloud = lab.cloud
    assert cloud is not None and lab.lifeline is not None
    # The lab's SBC made to name itself: its Record-Route says sbc.cloud.test, not its address.
    cloud.stop()
    cloud.advertise = f"{SBC_NAME}:5060"
    cloud.start()
    # Its restart may have cost a probe or two: held in NORMAL, where every call goes through the cloud.
    lab.lifeline.set_mode("normal")
    alice, bob = lab_phone(ep, lab, "1001"), lab_phone(ep, lab, "1002")
    assert alice.register() == 200 and bob.register() == 200

    # DNS goes down (the SBC itself still answers): calls must not notice.
    lab.topology.outage("dns")
    used = cloud.transactions()
    call = alice.call("1002")
    ep.wait_for(lambda: len(bob.incoming) > 0 or call.state == "DISCONNECTED", 15, "bob to ring")
    assert bob.incoming, f"the call failed: {call.record.last_code} {call.record.last_reason}"
    incoming = bob.incoming[-1]
    incoming.answer_with(200)
    # Bob's call is confirmed by alice's ACK, which goes to the SBC by its Record-Route: its name.
    ep.wait_for(lambda: call.state == "CONFIRMED" and incoming.state == "CONFIRMED", 10, "the ACK to reach bob")
    call.hang_up()
    ep.wait_for(lambda: incoming.state == "DISCONNECTED", 10, "alice's hang-up to reach bob")
    assert lab.status()["mode"]["mode"] == "normal"
    assert cloud.transactions() > used, "the call did not go through the cloud"
    log = lab.lifeline.log_path.read_text()
    assert "outside our dialogs" not in log
