"""The lab phones behave as desk phones do where pjsua leaves it to the application (real pjsua2, no proxy)."""

from __future__ import annotations

import pjsua2 as pj
import pytest

from gateway.errors import UserAgentError
from gateway.lab.phones import PhoneCall, SipEndpoint

pytestmark = pytest.mark.usefixtures("fresh_phones")


def holds(call: PhoneCall) -> bool:
    """Send a hold re-INVITE if pjsua takes one now (not while an INVITE of the call is pending)."""
    try:
        call.hold()
    except UserAgentError:
        return False
    return True


def test_a_resume_refused_as_crossing_another_re_invite_is_sent_again_and_lands(sip_endpoint: SipEndpoint) -> None:
    ep = sip_endpoint
    alice = ep.phone("1001", "unused", domain="127.0.0.1", registrar="sip:127.0.0.1:9")
    bob = ep.phone("1002", "unused", domain="127.0.0.1", registrar="sip:127.0.0.1:9")
    call = PhoneCall(alice)
    call.make_call(f"sip:1002@{ep.ua.transport_address(bob.transport_id)}")
    incoming = bob.ringing_call()
    incoming.answer_with(200)
    ep.wait_for(lambda: call.state == "CONFIRMED" and incoming.state == "CONFIRMED", what="call confirmed")
    call.hold()
    ep.wait_for(lambda: call.media_status == pj.PJSUA_CALL_MEDIA_LOCAL_HOLD, what="alice to hold")

    # Bob's re-INVITE leaves before alice's: with no pump between, each side gets the other's while
    # its own is pending, and both are refused (491, RFC 3261 14.2). A desk phone tries again.
    ep.wait_for(lambda: holds(incoming), what="bob to be able to hold (the ACK of alice's hold in)")
    call.resume()

    assert call.record.reinvite_refusals[0][0] == 491
    assert call.media_status == pj.PJSUA_CALL_MEDIA_ACTIVE
    ep.wait_for(lambda: incoming.media_status == pj.PJSUA_CALL_MEDIA_ACTIVE, what="bob to hear alice again")
    call.hang_up()
    ep.wait_for(lambda: incoming.state == "DISCONNECTED", what="bob to see the hang-up")
