"""Fixtures that start real parts: a Kamailio playing the cloud, the Lifeline daemon, pjsua2 phones."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from gateway.lab.cloud import LabCloud
from gateway.lab.daemon import LifelineProcess
from gateway.lab.pair_lab import PairLab
from gateway.mirror.records import Extension
from gateway.sip.render import free_port

if TYPE_CHECKING:  # pjsua2 is loaded only by the tests that make phones
    from gateway.lab.phones import Phone, SipEndpoint

CLOUD_HOST = "127.0.0.2"
PRIMARY, SECONDARY = "127.0.0.2", "127.0.0.3"  # two regions of one cloud, as two lab clouds
REALM = "asterisk"
PASSWORDS = {"1001": "alice-secret-1001", "1002": "bob-secret-1002", "1003": "carol-secret-1003"}


def lab_extensions() -> list[Extension]:
    """The extensions both the cloud and Lifeline know."""
    return [
        Extension.from_password(number=n, auth_user=n, realm=REALM, password=p, display_name=f"Ext {n}")
        for n, p in PASSWORDS.items()
    ]


def start_lab_cloud(workdir: Path, host: str, subscribers: list[Extension] | None = None, **options: Any) -> LabCloud:
    """A started lab cloud on host knowing subscribers (the lab's extensions if not given); options go to LabCloud."""
    lab = LabCloud(workdir, host=host, port=free_port(host), realm=REALM, **options)
    lab.add_subscribers(lab_extensions() if subscribers is None else subscribers)
    lab.start()
    return lab


@contextmanager
def lab_cloud(workdir: Path, host: str) -> Iterator[LabCloud]:
    """A start_lab_cloud on host, stopped afterwards."""
    lab = start_lab_cloud(workdir, host)
    try:
        yield lab
    finally:
        lab.stop()


@contextmanager
def two_regions(
    workdir: Path, start: Callable[[Path, str], LabCloud] = start_lab_cloud
) -> Iterator[tuple[LabCloud, LabCloud]]:
    """The primary and the secondary region's lab clouds, started by start; both stopped afterwards."""
    with ExitStack() as started:
        primary = start(workdir / "primary", PRIMARY)
        started.callback(primary.stop)
        secondary = start(workdir / "secondary", SECONDARY)
        started.callback(secondary.stop)
        yield primary, secondary


@contextmanager
def running_lifeline(
    workdir: Path,
    extensions_csv: Path,
    cloud: dict[str, Any],
    sections: dict[str, dict[str, Any]] | None = None,
    **sip: Any,
) -> Iterator[LifelineProcess]:
    """The real daemon with this [cloud] (realm: the lab's), [sip] and other sections, extensions imported; stopped."""
    config = {
        "cloud": {"realm": REALM, **cloud},
        "sip": {"listen": "127.0.0.1", "children": 2, **sip},
        **(sections or {}),
    }
    daemon = LifelineProcess(workdir, config)
    daemon.cli("extensions", "import", str(extensions_csv))
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


@contextmanager
def short_pair_lab(tag: str, extensions_csv: Path, **options: Any) -> Iterator[PairLab]:
    """A PairLab (the lab's realm) in a short work directory (for Kamailio's RPC socket); closed and removed after."""
    workdir = Path(tempfile.mkdtemp(prefix=f"ll{tag}-"))
    lab = PairLab(workdir, tag, extensions_csv, REALM, **options)
    try:
        yield lab
    finally:
        lab.close()
        shutil.rmtree(workdir, ignore_errors=True)


def lifeline_proxy(lifeline: LifelineProcess) -> str:
    """Lifeline's SIP address as a phone's outbound proxy (loose routing)."""
    return f"sip:127.0.0.1:{lifeline.sip_port};lr"


def phone_via_lifeline(
    ep: SipEndpoint,
    lifeline: LifelineProcess,
    cloud: LabCloud,
    user: str,
    domain: str = CLOUD_HOST,
    password: str | None = None,
) -> Phone:
    """A phone registering to the cloud with Lifeline as its outbound proxy (the default model), not yet registered."""
    secret = PASSWORDS[user] if password is None else password
    return ep.phone(user, secret, domain=domain, registrar=cloud.uri, proxy=lifeline_proxy(lifeline))


def registered_via_lifeline(ep: SipEndpoint, lifeline: LifelineProcess, cloud: LabCloud, *users: str) -> list[Phone]:
    """A phone_via_lifeline for each user, registered (200) one after the other."""
    phones = [phone_via_lifeline(ep, lifeline, cloud, user) for user in users]
    for phone in phones:
        assert phone.register() == 200, f"{phone.user} was not registered"
    return phones


def registered_in_survival(ep: SipEndpoint, lifeline: LifelineProcess, cloud: LabCloud, user: str) -> Phone:
    """Lifeline put in SURVIVAL, then a phone_via_lifeline for user, registered (200)."""
    lifeline.set_mode("survival")
    phone = phone_via_lifeline(ep, lifeline, cloud, user)
    assert phone.register() == 200
    return phone


def hmac_b64url(key: bytes, message: str) -> str:
    """HMAC-SHA256 of message, base64url without the padding (as Kamailio's crypto module writes it)."""
    mac = hmac.new(key, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def tcp_request(
    method: str,
    uri: str,
    via: tuple[str, int],
    from_uri: str,
    to_uri: str,
    call_id: str,
    max_forwards: int,
    headers: Sequence[str],
    body: str = "",
) -> str:
    """A SIP request as sent over TCP from via (host, port), written by hand: fresh branch and From tag, CSeq 1."""
    host, port = via
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/TCP {host}:{port};branch=z9hG4bK{secrets.token_hex(8)}",
        f"From: {from_uri};tag={secrets.token_hex(4)}",
        f"To: {to_uri}",
        f"Call-ID: {call_id}",
        f"CSeq: 1 {method}",
        f"Max-Forwards: {max_forwards}",
        *headers,
        f"Content-Length: {len(body)}",
    ]
    return "\r\n".join(lines) + "\r\n\r\n" + body


def wait_udp_bound(port: int, timeout: float = 10.0) -> None:
    """Wait until something listens on UDP 127.0.0.1:port (read from /proc: binding it ourselves would race)."""
    local = f"0100007F:{port:04X}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(line.split()[1] == local for line in Path("/proc/net/udp").read_text().splitlines()[1:]):
            return
        time.sleep(0.02)
    raise AssertionError(f"nothing bound UDP port {port} within {timeout:.0f} s")


@pytest.fixture(scope="session")
def sip_endpoint() -> Iterator[object]:
    """The process-wide pjsua2 endpoint (pjsua2 allows one per process)."""
    from gateway.lab.phones import SipEndpoint

    endpoint = SipEndpoint(int(os.environ.get("LIFELINE_PJSUA_LOG", "1")))
    yield endpoint
    endpoint.close()


@pytest.fixture
def fresh_phones(sip_endpoint: object) -> Iterator[None]:
    """Phones of one test leave with it (use with pytest.mark.usefixtures)."""
    yield
    from gateway.lab.phones import SipEndpoint

    assert isinstance(sip_endpoint, SipEndpoint)
    sip_endpoint.reset()


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[LabCloud]:
    """A real Kamailio registrar playing the cloud PBX on 127.0.0.2."""
    with lab_cloud(tmp_path / "cloud", CLOUD_HOST) as lab:
        yield lab


@pytest.fixture
def extensions_csv(tmp_path: Path) -> Path:
    """The installer's CSV with clear passwords (hashed on import)."""
    path = tmp_path / "extensions.csv"
    rows = ["number,password,name"] + [f"{n},{p},Ext {n}" for n, p in PASSWORDS.items()]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture
def lifeline(tmp_path: Path, cloud: LabCloud, extensions_csv: Path) -> Iterator[LifelineProcess]:
    """The real daemon with its Kamailio, relaying to the lab cloud, extensions imported."""
    with running_lifeline(tmp_path / "lifeline", extensions_csv, {"sbc": cloud.uri}) as daemon:
        yield daemon
