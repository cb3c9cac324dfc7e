from __future__ import annotations

import pytest

from gateway.sip.options import SipTarget, build_options, parse_response

KAMAILIO_200 = (
    b"SIP/2.0 200 Keepalive\r\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKabc;rport=40000\r\n"
    b"From: <sip:lifeline@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.2:5060>;tag=x\r\n"
    b"Call-ID: 0123@lifeline\r\nCSeq: 1 OPTIONS\r\nServer: kamailio\r\nContent-Length: 0\r\n\r\n"
)


def test_target_defaults_follow_the_uri_scheme() -> None:
    assert SipTarget.from_uri("sip:sbc.example.com") == SipTarget("sbc.example.com", 5060, "udp")
    assert SipTarget.from_uri("sips:sbc.example.com") == SipTarget("sbc.example.com", 5061, "tls")
    assert SipTarget.from_uri("sip:[2001:db8::1]:5070;transport=tcp") == SipTarget("2001:db8::1", 5070, "tcp")
    with pytest.raises(ValueError, match="not a SIP URI"):
        SipTarget.from_uri("http://sbc")


def test_request_carries_what_a_proxy_needs_to_answer_it() -> None:
    text = build_options(
        SipTarget("127.0.0.2", 5060, "tcp"), ("127.0.0.1", 40000), "0123@lifeline", "z9hG4bKabc"
    ).decode()
    lines = text.split("\r\n")
    assert lines[0] == "OPTIONS sip:127.0.0.2:5060 SIP/2.0"
    assert "Via: SIP/2.0/TCP 127.0.0.1:40000;branch=z9hG4bKabc;rport" in lines
    assert "Call-ID: 0123@lifeline" in lines and "CSeq: 1 OPTIONS" in lines
    assert text.endswith("Content-Length: 0\r\n\r\n")


def test_response_status_and_call_id_are_read() -> None:
    response = parse_response(KAMAILIO_200)
    assert (response.status, response.reason, response.call_id) == (200, "Keepalive", "0123@lifeline")


def test_compact_call_id_header_is_understood() -> None:
    compact = KAMAILIO_200.replace(b"Call-ID:", b"i:").replace(b"SIP/2.0 200 Keepalive", b"SIP/2.0 404 Not Found")
    assert parse_response(compact).status == 404


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"OPTIONS sip:x SIP/2.0\r\n\r\n", "not a SIP response"),
        (b"SIP/2.0 200 OK\r\nCSeq: 1 OPTIONS\r\n\r\n", "without Call-ID"),
        (b"\x00\xff garbage", "not a SIP response"),
    ],
)
def test_anything_else_is_refused_with_the_reason(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_response(data)
