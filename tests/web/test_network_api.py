"""The daemon's API over HTTPS on the LAN: bearer tokens with scopes, failed logins blocked, secrets kept out.

A real daemon (Kamailio and all) on loopback; a real aiohttp client over TLS that trusts the daemon's
own certificate file; tokens made with the real CLI over the unix socket.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import socket
import sqlite3
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.lab.daemon import LifelineProcess
from gateway.web import openapi

BLOCK_S = 2  # the test config's first block: short, so the recovery is seen without a long wait
OTHER = "127.0.0.2"  # a second source address on loopback: the limiter test blocks it, not 127.0.0.1


@dataclass
class Daemon:
    process: LifelineProcess
    status: dict[str, Any]
    secrets: list[str]

    @property
    def url(self) -> str:
        return str(self.status["api"]["url"]).removesuffix("/api/v1/")

    def token(self, scope: str, name: str | None = None) -> str:
        done = self.process.cli("token", "create", "--name", name or f"test-{scope}", "--scope", scope)
        secret = done.stdout.splitlines()[1]
        self.secrets.append(secret)
        return secret

    def log(self) -> str:
        return self.process.log_path.read_text()


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    work = Path(tempfile.mkdtemp(prefix="ll-"))  # short: the unix socket's path has a 108-byte limit
    process = LifelineProcess(work, {"api": {"port": 0, "auth_failures": 10, "auth_block_s": BLOCK_S}})
    try:
        yield Daemon(process, process.start(), [])
    finally:
        process.stop()
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
async def client(daemon: Daemon) -> AsyncIterator[aiohttp.ClientSession]:
    async with _session(daemon, "127.0.0.1") as session:
        yield session


def _session(daemon: Daemon, source: str) -> aiohttp.ClientSession:
    trust = ssl.create_default_context(cafile=daemon.status["api"]["certificate"])  # verifies name and chain
    connector = aiohttp.TCPConnector(ssl=trust, local_addr=(source, 0), force_close=True)
    return aiohttp.ClientSession(base_url=daemon.url, connector=connector)


async def call(
    session: aiohttp.ClientSession, method: str, path: str, token: str | None = None, body: Any = None
) -> tuple[int, Any, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with session.request(method, path, headers=headers, json=body) as response:
        text = await response.text()
        parsed = json.loads(text) if response.content_type == "application/json" else text
        return response.status, parsed, response.headers


async def test_no_token_or_a_wrong_one_is_refused_with_a_bearer_challenge(
    daemon: Daemon, client: aiohttp.ClientSession
) -> None:
    status, body, headers = await call(client, "GET", "/api/v1/status")
    assert status == 401 and headers["WWW-Authenticate"] == 'Bearer realm="lifeline"'
    assert "mode" not in body
    for wrong in ("ll_t0123456789_not-a-real-secret", "nonsense"):
        status, _, headers = await call(client, "GET", "/api/v1/status", wrong)
        assert status == 401 and 'error="invalid_token"' in headers["WWW-Authenticate"]
    # A real token's id with a wrong secret is no better.
    real = daemon.token("admin")
    status, _, _ = await call(client, "GET", "/api/v1/status", real[:-4] + "AAAA")
    assert status == 401
    # One fail2ban-friendly line per failure, with the source address.
    assert daemon.log().count("api authentication failed from 127.0.0.1: unknown token") >= 3
    assert "api authentication failed from 127.0.0.1: no bearer token" in daemon.log()


async def test_each_scope_reaches_what_it_grants_and_no_more(daemon: Daemon, client: aiohttp.ClientSession) -> None:
    read, webhook, operate = daemon.token("read"), daemon.token("webhook"), daemon.token("operate")

    status, body, _ = await call(client, "GET", "/api/v1/status", read)
    assert status == 200 and body["mode"]["override"] == "auto"
    assert (await call(client, "GET", "/api/v1/mirror", read))[0] == 200
    status, body, headers = await call(client, "PUT", "/api/v1/mode", read, {"mode": "survival"})
    assert status == 403 and "needs operate" in body["error"]
    assert 'error="insufficient_scope", scope="operate"' in headers["WWW-Authenticate"]
    assert (await call(client, "GET", "/api/v1/tokens", read))[0] == 403
    assert (await call(client, "POST", "/api/v1/mirror/webhook", read, {"action": "changed"}))[0] == 403

    # The webhook's token may say "pull now", and nothing else.
    assert (await call(client, "POST", "/api/v1/mirror/webhook", webhook, {"action": "changed"}))[0] == 202
    assert (await call(client, "GET", "/api/v1/status", webhook))[0] == 403

    status, body, _ = await call(client, "PUT", "/api/v1/mode", operate, {"mode": "survival", "reason": "vendor drill"})
    assert status == 200 and body["mode"]["mode"] == "survival"
    seen = (await call(client, "GET", "/api/v1/status", read))[1]["mode"]
    assert (seen["mode"], seen["override"], seen["reason"]) == ("survival", "survival", "vendor drill")
    assert daemon.process.status()["mode"]["mode"] == "survival"  # the CLI over the socket sees the same
    assert (await call(client, "PUT", "/api/v1/mode", operate, {"mode": "auto"}))[0] == 200
    assert (await call(client, "GET", "/api/v1/tokens", operate))[0] == 403
    # A route the router does not have is still behind the token, then the router's own answer.
    assert (await call(client, "GET", "/api/v1/nothing-here"))[0] == 401
    assert (await call(client, "GET", "/api/v1/nothing-here", read))[0] == 404


async def test_admin_makes_and_revokes_tokens_and_a_revoked_one_stops_at_once(
    daemon: Daemon, client: aiohttp.ClientSession
) -> None:
    admin = daemon.token("admin")
    status, made, _ = await call(client, "POST", "/api/v1/tokens", admin, {"name": "noc", "scope": "read"})
    assert status == 201 and made["token"]["scope"] == "read"
    secret, made_id = made["secret"], made["token"]["id"]
    daemon.secrets.append(secret)
    assert (await call(client, "GET", "/api/v1/status", secret))[0] == 200
    assert (await call(client, "POST", "/api/v1/tokens", admin, {"name": "x", "scope": "root"}))[0] == 400

    status, revoked, _ = await call(client, "DELETE", f"/api/v1/tokens/{made_id}", admin)
    assert status == 200 and revoked["token"]["revoked_at"] is not None
    status, _, headers = await call(client, "GET", "/api/v1/status", secret)
    assert status == 401 and 'error="invalid_token"' in headers["WWW-Authenticate"]
    assert f"api authentication failed from 127.0.0.1: revoked token {made_id}" in daemon.log()
    assert (await call(client, "DELETE", "/api/v1/tokens/tffffffffff", admin))[0] == 404

    status, listing, _ = await call(client, "GET", "/api/v1/tokens", admin)
    assert status == 200
    entry = next(t for t in listing["tokens"] if t["id"] == made_id)
    assert entry["revoked_at"] is not None and entry["last_used_from"] == "127.0.0.1"
    assert not any(key in t for t in listing["tokens"] for key in ("secret", "digest"))
    assert secret not in json.dumps(listing)


async def test_the_served_openapi_document_is_the_checked_in_one(daemon: Daemon, client: aiohttp.ClientSession) -> None:
    status, served, _ = await call(client, "GET", "/api/v1/openapi.json", daemon.token("read"))
    assert status == 200 and served == json.loads(openapi.OPENAPI_FILE.read_text())
    # Every route the daemon's router serves is in the route table (else it would be socket only).
    assert daemon.process.status()["api"]["socket_only_routes"] == []


async def test_repeated_failures_block_the_address_for_a_while(daemon: Daemon, client: aiohttp.ClientSession) -> None:
    good = daemon.token("read", "limiter")
    async with _session(daemon, OTHER) as other:
        for _ in range(10):
            assert (await call(other, "GET", "/api/v1/status", "ll_t0000000000_guess"))[0] == 401
        status, _, headers = await call(other, "GET", "/api/v1/status", "ll_t0000000000_guess")
        assert status == 429 and 1 <= int(headers["Retry-After"]) <= BLOCK_S
        assert (await call(other, "GET", "/api/v1/status", good))[0] == 429  # the address, whatever it sends
        # Only that address: the same token from another one goes through.
        assert (await call(client, "GET", "/api/v1/status", good))[0] == 200
        log = daemon.log()
        assert log.count(f"api authentication failed from {OTHER}: unknown token") == 10
        assert f"API: {OTHER} blocked for {BLOCK_S} s after 10 failed authentications" in log
        # The block ends by itself.
        deadline = time.monotonic() + BLOCK_S + 10
        while (status := (await call(other, "GET", "/api/v1/status", good))[0]) == 429:
            assert time.monotonic() < deadline, "the block did not end"
            await asyncio.sleep(0.2)  # the block ends by the clock: look again shortly
        assert status == 200
    events = daemon.process.status()["events"]
    assert any(e["kind"] == "api" and OTHER in e["message"] for e in events)


def test_the_token_cli_shows_the_secret_once_and_the_store_holds_only_its_digest(daemon: Daemon) -> None:
    done = daemon.process.cli("token", "create", "--name", "vendor-noc", "--scope", "operate")
    secret = done.stdout.splitlines()[1]
    daemon.secrets.append(secret)
    assert secret.startswith("ll_t") and len(secret) > 40
    assert done.stdout.count(secret) == 1 and "shown this once" in done.stdout
    token_id = secret.split("_")[1]
    listing = daemon.process.cli("token", "list").stdout + daemon.process.cli("token", "list", "--json").stdout
    assert token_id in listing and "vendor-noc" in listing
    assert secret not in listing and secret.split("_", 2)[2] not in listing

    data = daemon.process.workdir / "data"
    with sqlite3.connect(f"file:{data / 'lifeline.db'}?mode=ro", uri=True) as db:
        row = db.execute("SELECT * FROM api_tokens WHERE id = ?", [token_id]).fetchone()
        names = [d[0] for d in db.execute("SELECT * FROM api_tokens").description]
    stored = dict(zip(names, row, strict=True))
    assert stored["digest"] == hashlib.sha256(secret.encode()).hexdigest()
    assert not any(secret.split("_", 2)[2] in str(value) for value in stored.values())
    for path in data.glob("lifeline.db*"):  # the database and its WAL: nowhere in clear
        raw = path.read_bytes()
        assert all(s.encode() not in raw and s.split("_", 2)[2].encode() not in raw for s in daemon.secrets)

    assert daemon.process.cli("token", "revoke", token_id).returncode == 0
    assert "revoked" in daemon.process.cli("token", "list").stdout


def test_status_says_where_the_network_api_listens(daemon: Daemon) -> None:
    api = daemon.status["api"]
    assert api["url"] == f"https://127.0.0.1:{api['port']}/api/v1/" and api["port"] > 0
    assert api["certificate"] == str(daemon.process.workdir / "data" / "tls" / "lifeline.crt")
    text = daemon.process.cli("status").stdout
    assert f"network api:   {api['url']} (certificate {api['certificate']})" in text


def test_no_secret_ever_reaches_the_log(daemon: Daemon) -> None:
    daemon.token("read", "log-check")
    log = daemon.log()
    assert daemon.secrets and all(s not in log and s.split("_", 2)[2] not in log for s in daemon.secrets)
    assert "ll_t0000000000_guess" not in log and "not-a-real-secret" not in log


def test_a_taken_port_leaves_sip_running_and_says_why(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        process = LifelineProcess(Path(tempfile.mkdtemp(prefix="ll-")), {"api": {"port": port}})
        try:
            status = process.start()
            assert status["sip"]["kamailio"]["state"] == "running"
            assert status["api"]["url"] is None
            assert f"cannot serve the network API on 127.0.0.1:{port}" in status["api"]["error"]
            assert "network api:   NOT SERVING: cannot serve" in process.cli("status").stdout
        finally:
            process.stop()
            shutil.rmtree(process.workdir, ignore_errors=True)
