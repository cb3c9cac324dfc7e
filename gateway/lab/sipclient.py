"""A bare UDP SIP client for attack tests and benchmarks: hand-built requests, digest answered by hand.

A phone library would refuse to do what an attacker does (replay a captured Authorization, forge a
Route or a header, send straight to the trunk agent); this client sends exactly the text it is given.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import socket
import time
from dataclasses import dataclass, field


@dataclass
class Response:
    """One SIP response as received."""

    code: int
    reason: str
    headers: dict[str, list[str]] = field(default_factory=dict)
    raw: str = ""

    def header(self, name: str) -> str | None:
        """The first value of a header (case-insensitive), or None."""
        values = self.headers.get(name.lower())
        return values[0] if values else None


@dataclass(frozen=True)
class Challenge:
    """A digest challenge from a 401/407."""

    realm: str
    nonce: str
    qop: str | None
    proxy: bool  # 407: answer in Proxy-Authorization


def parse_response(data: bytes) -> Response | None:
    """A response's status line and headers, or None for anything else (a request, garbage)."""
    text = data.decode(errors="replace")
    head = text.split("\r\n\r\n", 1)[0].split("\r\n")
    status = re.match(r"SIP/2\.0 (\d{3}) ?(.*)", head[0])
    if status is None:
        return None
    headers: dict[str, list[str]] = {}
    for line in head[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers.setdefault(name.strip().lower(), []).append(value.strip())
    return Response(int(status[1]), status[2], headers, text)


def challenge_of(response: Response) -> Challenge | None:
    """The digest challenge in a 401 or 407."""
    proxy = response.code == 407
    value = response.header("proxy-authenticate" if proxy else "www-authenticate")
    if value is None:
        return None
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', value))
    qop = params.get("qop")
    return Challenge(params["realm"], params["nonce"], "auth" if qop and "auth" in qop.split(",") else None, proxy)


def md5(text: str) -> str:
    """Hex MD5, as digest authentication uses it."""
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def authorization(
    challenge: Challenge, method: str, uri: str, user: str, password: str, nc: int = 1, cnonce: str | None = None
) -> str:
    """The Authorization (or Proxy-Authorization) header line answering a challenge."""
    ha1 = md5(f"{user}:{challenge.realm}:{password}")
    ha2 = md5(f"{method}:{uri}")
    name = "Proxy-Authorization" if challenge.proxy else "Authorization"
    fields = f'username="{user}", realm="{challenge.realm}", nonce="{challenge.nonce}", uri="{uri}", algorithm=MD5'
    if challenge.qop is None:
        return f'{name}: Digest {fields}, response="{md5(f"{ha1}:{challenge.nonce}:{ha2}")}"'
    cnonce = cnonce or secrets.token_hex(8)
    count = f"{nc:08x}"
    response = md5(f"{ha1}:{challenge.nonce}:{count}:{cnonce}:auth:{ha2}")
    return f'{name}: Digest {fields}, response="{response}", qop=auth, nc={count}, cnonce="{cnonce}"'


class SipClient:
    """A UDP socket on local_ip that talks to one SIP server."""

    def __init__(self, server: tuple[str, int], local_ip: str = "127.0.0.1", port: int = 0) -> None:
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((local_ip, port))
        self.local = self.sock.getsockname()

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def __enter__(self) -> SipClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        uri: str,
        *,
        from_uri: str,
        to_uri: str,
        call_id: str | None = None,
        cseq: int = 1,
        to_tag: str | None = None,
        from_tag: str | None = None,
        headers: tuple[str, ...] = (),
        body: str = "",
    ) -> str:
        """The text of a request from this socket (a new branch each time; a new From tag unless given)."""
        host, port = self.local
        branch = "z9hG4bK" + secrets.token_hex(8)
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP {host}:{port};rport;branch={branch}",
            "Max-Forwards: 70",
            f"From: {from_uri};tag={from_tag or secrets.token_hex(4)}",
            f"To: {to_uri}" + (f";tag={to_tag}" if to_tag else ""),
            f"Call-ID: {call_id or secrets.token_hex(12)}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:{host}:{port}>",
            *headers,
            f"Content-Length: {len(body.encode())}",
        ]
        return "\r\n".join(lines) + "\r\n\r\n" + body

    def send(self, text: str, to: tuple[str, int] | None = None) -> None:
        """Send a message as it is."""
        self.sock.sendto(text.encode(), to or self.server)

    def receive(self, timeout: float) -> Response | None:
        """The next response within timeout, or None."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                return None
            response = parse_response(data)
            if response is not None:
                return response
        return None

    def final(self, text: str, timeout: float = 2.0, to: tuple[str, int] | None = None) -> Response | None:
        """Send a request and return its final response (provisional ones skipped), or None."""
        self.send(text, to)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            response = self.receive(left)
            if response is None:
                return None
            if response.code >= 200:
                return response
        return None

    def register(
        self, user: str, password: str, domain: str, *, timeout: float = 2.0, registrar: str | None = None
    ) -> tuple[Response | None, str | None, str]:
        """REGISTER with digest auth to registrar (default: this server): (answer, Authorization sent, request)."""
        uri = registrar or f"sip:{self.server[0]}:{self.server[1]}"
        aor = f"<sip:{user}@{domain}>"
        call_id = secrets.token_hex(12)
        first = self.final(
            self.request("REGISTER", uri, from_uri=aor, to_uri=aor, call_id=call_id, headers=("Expires: 60",)),
            timeout,
        )
        if first is None or (challenge := challenge_of(first)) is None:
            return first, None, ""
        auth = authorization(challenge, "REGISTER", uri, user, password)
        text = self.request(
            "REGISTER", uri, from_uri=aor, to_uri=aor, call_id=call_id, cseq=2, headers=("Expires: 60", auth)
        )
        return self.final(text, timeout), auth, text
