"""The ACK of a failed call is taken by its transaction: Lifeline stops resending the failure at once."""

from __future__ import annotations

import time

import pytest

from gateway.lab.cloud import LabCloud
from gateway.lab.daemon import LifelineProcess
from gateway.lab.phones import SipEndpoint
from gateway.lab.sipclient import Response, SipClient, authorization, challenge_of
from tests.conftest import CLOUD_HOST, PASSWORDS, lifeline_proxy, registered_in_survival

pytestmark = pytest.mark.usefixtures("fresh_phones")
SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"


def ack_for(invite: str, answer: Response) -> str:
    """The ACK of a non-2xx answer: the INVITE's Via branch, Route and Call-ID, the answer's To tag."""
    lines = []
    for line in invite.split("\r\n\r\n", 1)[0].split("\r\n"):
        name = line.split(":", 1)[0].strip().lower()
        if line.startswith("INVITE "):
            lines.append("ACK " + line.removeprefix("INVITE "))
        elif name == "to":
            lines.append(f"To: {answer.header('to')}")
        elif name == "cseq":
            lines.append(line.replace("INVITE", "ACK"))
        elif name not in ("content-type", "content-length", "proxy-authorization", "contact"):
            lines.append(line)
    return "\r\n".join([*lines, "Content-Length: 0"]) + "\r\n\r\n"


def final(client: SipClient, within: float = 10.0) -> Response:
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        answer = client.receive(left)
        if answer is not None and answer.code >= 200:
            return answer
    raise AssertionError("no final answer")


def test_the_ack_of_a_refused_call_stops_the_refusal_being_sent_again(
    sip_endpoint: SipEndpoint, cloud: LabCloud, lifeline: LifelineProcess
) -> None:
    ep = sip_endpoint
    bob = registered_in_survival(ep, lifeline, cloud, "1002")
    proxy = lifeline_proxy(lifeline)
    uri = f"sip:1002@{CLOUD_HOST}"
    with SipClient(("127.0.0.1", lifeline.sip_port)) as alice:
        # A desk phone with Lifeline as outbound proxy: every request carries that Route, its ACKs too.
        caller, callee, call_id = f"<sip:1001@{CLOUD_HOST}>", f"<{uri}>", "ack-test-1"
        route = f"Route: <{proxy}>"
        first = alice.request(
            "INVITE", uri, from_uri=caller, to_uri=callee, call_id=call_id,
            headers=(route, "Content-Type: application/sdp"), body=SDP,
        )  # fmt: skip
        alice.send(first)
        challenge = final(alice)
        assert challenge.code == 407
        alice.send(ack_for(first, challenge))
        answer_auth = challenge_of(challenge)
        assert answer_auth is not None
        auth = authorization(answer_auth, "INVITE", uri, "1001", PASSWORDS["1001"])
        second = alice.request(
            "INVITE", uri, from_uri=caller, to_uri=callee, call_id=call_id, cseq=2,
            headers=(route, auth, "Content-Type: application/sdp"), body=SDP,
        )  # fmt: skip
        alice.send(second)
        ep.wait_for(lambda: len(bob.incoming) == 1, 10, "bob's phone to ring")
        bob.incoming[-1].answer_with(486)  # busy
        ep.pump(100)
        refused = final(alice)
        assert refused.code == 486
        alice.send(ack_for(second, refused))
        # Lifeline would resend the 486 after 0.5 s, 1.5 s, 3.5 s… to a caller whose ACK it refused. On a
        # busy box the first resend may leave before the ACK is read, and cross it: the caller acknowledges
        # that one again, as a phone does (RFC 3261 17.1.1.2), and after that nothing more may come.
        crossed, again = [], []
        deadline = time.monotonic() + 3.0
        while (left := deadline - time.monotonic()) > 0:
            extra = alice.receive(left)
            if extra is None:
                continue
            if extra.code == 486 and not crossed and not again:
                crossed.append(extra.code)
                alice.send(ack_for(second, extra))
                deadline = time.monotonic() + 3.0  # the next resend of a refused ACK is 1 s after this one
            else:
                again.append(extra.code)
    assert again == [], f"the failure came again after its ACK: {crossed + again}"
    log = lifeline.log_path.read_text()
    assert "in-dialog ACK" not in log, "the ACK of the failure was taken for a request outside our dialogs"
