"""The list of registered phones, from a real daemon and its Kamailio with real pjsua2 phones.

One phone registers through the cloud (NORMAL), one while Lifeline serves locally (SURVIVAL): the
status document, the network API (read scope), the status page and `lifeline status` each show both,
with the directory's names, where each phone is reached and how its binding was taken; no secret.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import ssl
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pjsua2 as pj
import pytest

from gateway.lab.cloud import LabCloud
from gateway.lab.daemon import LifelineProcess
from gateway.lab.phones import Phone, SipEndpoint
from gateway.sip.render import free_port
from gateway.store import Store
from tests.conftest import CLOUD_HOST, PASSWORDS, REALM, lab_extensions

pytestmark = pytest.mark.usefixtures("fresh_phones")


@dataclass
class Box:
    daemon: LifelineProcess
    cloud: LabCloud
    status: dict[str, Any]

    @property
    def url(self) -> str:
        return str(self.status["api"]["url"]).removesuffix("/api/v1/")

    def phone(self, ep: SipEndpoint, user: str) -> Phone:
        proxy = f"sip:127.0.0.1:{self.status['sip']['port']};lr"
        return ep.phone(user, PASSWORDS[user], domain=CLOUD_HOST, registrar=self.cloud.uri, proxy=proxy)


@pytest.fixture
def box(extensions_csv: Path) -> Iterator[Box]:
    work = Path(tempfile.mkdtemp(prefix="ll-"))  # short: the unix socket's path has a 108-byte limit
    cloud = LabCloud(work / "cloud", host=CLOUD_HOST, port=free_port(CLOUD_HOST), realm=REALM)
    cloud.add_subscribers(lab_extensions())
    cloud.start()
    daemon = LifelineProcess(
        work / "ll",
        {
            "cloud": {"sbc": cloud.uri, "realm": REALM},
            "sip": {"listen": "127.0.0.1", "children": 2},
            "api": {"port": 0},
        },
    )
    try:
        daemon.cli("extensions", "import", str(extensions_csv))
        yield Box(daemon, cloud, daemon.start())
    finally:
        daemon.stop()
        cloud.stop()
        shutil.rmtree(work, ignore_errors=True)


def address(phone: Phone) -> str:
    """Where the phone listens (host:port of its UDP transport)."""
    return str(pj.Endpoint.instance().transportGetInfo(phone.transport_id).localName)


def listed(box: Box, extensions: set[str], within_s: float = 10.0) -> dict[str, Any]:
    """The status once its list of phones holds exactly these extensions (AssertionError after within_s)."""
    deadline = time.monotonic() + within_s
    while True:
        status = box.daemon.status()
        shown = {p["extension"] for p in status["registrations"]["phones"] or []}
        if shown == extensions:
            return status
        assert time.monotonic() < deadline, f"the status lists {sorted(shown)}, not {sorted(extensions)}"
        time.sleep(0.2)


def by_extension(phones: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {p["extension"]: p for p in phones}


async def fetch(box: Box, path: str, token: str | None = None) -> tuple[int, Any]:
    trust = ssl.create_default_context(cafile=box.status["api"]["certificate"])
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession(base_url=box.url, connector=aiohttp.TCPConnector(ssl=trust)) as session,
        session.get(path, headers=headers) as response,
    ):
        return response.status, await response.json(content_type=None)


async def page_status(box: Box, password: str) -> tuple[str, dict[str, Any]]:
    """Log in to the status page; its HTML and the JSON its script polls."""
    trust = ssl.create_default_context(cafile=box.status["api"]["certificate"])
    jar = aiohttp.CookieJar(unsafe=True)  # the box is reached by its address: cookies of an IP host kept
    connector = aiohttp.TCPConnector(ssl=trust)
    async with aiohttp.ClientSession(base_url=box.url, connector=connector, cookie_jar=jar) as session:
        async with session.get("/ui/login") as form:
            csrf = re.search(r'name="csrf" value="([^"]+)"', await form.text())
        assert csrf is not None
        async with session.post("/ui/login", data={"csrf": csrf[1], "password": password}) as page:
            assert page.status == 200 and page.url.path == "/ui/"
            html = await page.text()
        async with session.get("/ui/status.json") as polled:
            return html, await polled.json()


def test_each_phone_shows_with_its_name_address_and_whether_the_cloud_or_lifeline_took_it(
    sip_endpoint: SipEndpoint, box: Box
) -> None:
    ep = sip_endpoint
    alice = box.phone(ep, "1001")
    assert alice.register() == 200  # NORMAL: relayed to the cloud, its answer copied
    # usrloc saves whole seconds, and a mode change within the second a binding was saved counts as
    # before it (gateway/web/phones.py mode_at): the switch waits for the next second to begin.
    saved = by_extension(listed(box, {"1001"})["registrations"]["phones"])["1001"]["saved_at"]
    while time.time() < saved + 1:
        time.sleep(0.05)
    box.daemon.set_mode("survival")
    bob = box.phone(ep, "1002")
    assert bob.register() == 200  # SURVIVAL: Lifeline authenticates the phone itself

    # The list is built anew within a second of usrloc's counts changing (gateway/web/phones.py).
    status = listed(box, {"1001", "1002"})
    phones = by_extension(status["registrations"]["phones"])
    assert phones["1001"]["name"] == "Ext 1001" and phones["1002"]["name"] == "Ext 1002"
    assert phones["1001"]["source"] == address(alice) and phones["1002"]["source"] == address(bob)
    assert phones["1001"]["transport"] == phones["1002"]["transport"] == "udp"
    assert (phones["1001"]["taken"], phones["1001"]["mode"]) == ("cloud", "normal")
    assert (phones["1002"]["taken"], phones["1002"]["mode"]) == ("local", "survival")
    assert phones["1002"]["user_agent"] == "Lifeline test phone"  # pjsua2's, as the phone sent it
    assert phones["1001"]["user_agent"] is None  # the cloud's answer carries no phone's user agent
    assert 0 < phones["1002"]["expires_s"] <= 60 < phones["1001"]["expires_s"]  # survival.register_expires

    # No secret in any of it: not the HA1 the store holds, not a digest header.
    store = Store(box.daemon.workdir / "data" / "lifeline.db")
    try:
        with store.read() as conn:
            digests = [v for row in conn.execute("SELECT ha1, ha1_sha256 FROM extensions") for v in row if v]
    finally:
        store.close()
    text = json.dumps(status)
    assert digests and not any(d in text for d in digests)
    assert not re.search(r"(?i)authorization|nonce|response=", json.dumps(status["registrations"]))

    # The network API: read scope is enough, no token is not.
    token = box.daemon.cli("token", "create", "--name", "fleet", "--scope", "read").stdout.splitlines()[1]
    code, _ = asyncio.run(fetch(box, "/api/v1/status"))
    assert code == 401
    code, _ = asyncio.run(fetch(box, "/api/v1/status", token[:-4] + "AAAA"))  # a wrong secret
    assert code == 401
    hook = box.daemon.cli("token", "create", "--name", "hook", "--scope", "webhook").stdout.splitlines()[1]
    code, refused = asyncio.run(fetch(box, "/api/v1/status", hook))
    assert code == 403 and "needs read" in refused["error"] and "phones" not in json.dumps(refused)
    code, body = asyncio.run(fetch(box, "/api/v1/status", token))
    assert code == 200 and set(by_extension(body["registrations"]["phones"])) == {"1001", "1002"}

    # The status page: the table on the page, and the same rows in what its script polls.
    password = box.daemon.cli("admin", "password").stdout.splitlines()[1]
    html, polled = asyncio.run(page_status(box, password))
    assert re.search(r'<td data-label="Ext\.">1001</td><td data-label="Name">Ext 1001</td>', html)
    assert "SURVIVAL (local)" in html and "NORMAL (cloud)" in html
    rows = {r["extension"]: r for r in polled["phones"]}
    assert rows["1002"]["source"] == address(bob) and rows["1002"]["taken"] == "SURVIVAL (local)"
    assert rows["1001"]["user_agent"] == "—"

    # `lifeline status`, briefly: one line a phone.
    out = box.daemon.cli("status").stdout
    assert re.search(rf"1001 Ext 1001\s+{re.escape(address(alice))}\s+udp\s+NORMAL \(cloud\)", out), out
    assert re.search(rf"1002 Ext 1002\s+{re.escape(address(bob))}\s+udp\s+SURVIVAL \(local\)", out), out
