"""The one SIP request Lifeline writes itself: an OPTIONS keepalive, and reading the status of its answer.

Everything else SIP goes through Kamailio. A health probe needs only "did the cloud answer, and
how fast", so this stays a request template and a status-line reader, not a SIP stack.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from gateway.config import SIP_URI

CRLF = "\r\n"
_CALL_ID = re.compile(r"^(?:call-id|i)\s*:\s*(\S+)\s*$", re.IGNORECASE | re.MULTILINE)
_STATUS = re.compile(r"^SIP/2\.0 (\d{3}) ?([^\r\n]*)")


@dataclass(frozen=True)
class SipTarget:
    """Where an OPTIONS probe goes."""

    host: str
    port: int
    transport: str  # udp | tcp | tls

    @classmethod
    def from_uri(cls, uri: str) -> SipTarget:
        """Parse sip:host[:port][;transport=…] (ValueError with the reason otherwise)."""
        match = SIP_URI.match(uri)
        if match is None:
            raise ValueError(f"not a SIP URI: {uri!r}")
        secure = uri.startswith("sips:")
        transport = match["transport"] or ("tls" if secure else "udp")
        default_port = 5061 if transport == "tls" else 5060
        return cls(match["host"].strip("[]"), int(match["port"] or default_port), transport)


@dataclass(frozen=True)
class OptionsResponse:
    """The parts of a response a probe looks at."""

    status: int
    reason: str
    call_id: str


def build_options(target: SipTarget, local: tuple[str, int], call_id: str, branch: str) -> bytes:
    """An OPTIONS request to the target itself (no user part), from the local address."""
    via_proto = target.transport.upper()
    host = f"[{target.host}]" if ":" in target.host else target.host
    local_host = f"[{local[0]}]" if ":" in local[0] else local[0]
    lines = [
        f"OPTIONS sip:{host}:{target.port} SIP/2.0",
        f"Via: SIP/2.0/{via_proto} {local_host}:{local[1]};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:lifeline@{local_host}>;tag={secrets.token_hex(6)}",
        f"To: <sip:{host}:{target.port}>",
        f"Call-ID: {call_id}",
        "CSeq: 1 OPTIONS",
        "User-Agent: Lifeline health probe",
        "Accept: application/sdp",
        "Content-Length: 0",
        "",
        "",
    ]
    return CRLF.join(lines).encode()


def new_ids() -> tuple[str, str]:
    """A fresh Call-ID and a RFC 3261 branch."""
    return f"{secrets.token_hex(10)}@lifeline", f"z9hG4bK{secrets.token_hex(10)}"


def parse_response(data: bytes) -> OptionsResponse:
    """Status, reason and Call-ID of a SIP response (ValueError if it is not one)."""
    text = data.decode("utf-8", errors="replace")
    head = text.split("\r\n\r\n", 1)[0]
    status = _STATUS.match(head)
    if status is None:
        raise ValueError(f"not a SIP response: {head[:40]!r}")
    call_id = _CALL_ID.search(head)
    if call_id is None:
        raise ValueError("SIP response without Call-ID")
    return OptionsResponse(int(status[1]), status[2].strip(), call_id[1])
