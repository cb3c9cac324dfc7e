"""The network API's parts on their own: the failure limiter, where it listens, its TLS, its tokens, its config."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config import parse
from gateway.errors import ConfigError
from gateway.sip.tls import TlsFiles, make_certificate
from gateway.store import Store
from gateway.web.network import FailureLimiter, bearer, lan_address, listen_address, server_context
from gateway.web.routes import Scope
from gateway.web.tokens import TokenStore, digest

# /proc/net/route with the default route via 127.0.0.1 (little-endian hex): the box's "LAN address" is loopback's.
ROUTES = (
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
    "lo\t00000000\t0100007F\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ten_failures_in_the_window_block_and_each_block_doubles_up_to_the_cap() -> None:
    clock = Clock()
    limiter = FailureLimiter(failures=10, window_s=60, block_s=60, block_max_s=200, clock=clock)
    assert [limiter.fail("192.0.2.7") for _ in range(9)] == [0.0] * 9
    assert limiter.blocked("192.0.2.7") == 0.0
    assert limiter.fail("192.0.2.7") == 60.0
    assert limiter.blocked("192.0.2.7") == 60.0 and limiter.blocked("192.0.2.8") == 0.0
    clock.now += 60
    assert limiter.blocked("192.0.2.7") == 0.0  # over, by the clock alone
    blocks = []
    for _ in range(2):
        blocks.append(next(b for b in (limiter.fail("192.0.2.7") for _ in range(10)) if b))
        clock.now += blocks[-1]
    assert blocks == [120.0, 200.0]  # doubled, then capped
    clock.now += 86401  # a quiet day: the next block is a first one again
    assert next(b for b in (limiter.fail("192.0.2.7") for _ in range(10)) if b) == 60.0


def test_failures_spread_wider_than_the_window_never_block() -> None:
    clock = Clock()
    limiter = FailureLimiter(failures=3, window_s=10, block_s=5, block_max_s=5, clock=clock)
    for _ in range(20):
        assert limiter.fail("192.0.2.9") == 0.0
        clock.now += 5.1  # two failures at most inside any 10 s


def test_bearer_header_parsing() -> None:
    assert bearer("Bearer abc") == "abc" and bearer("bearer   abc ") == "abc"
    assert bearer(None) is None and bearer("Basic abc") is None and bearer("Bearer ") is None


def test_the_api_listens_on_sip_listen_or_the_lan_address_never_on_every_address() -> None:
    assert listen_address(parse({})) == ("127.0.0.1", None)
    assert listen_address(parse({"sip": {"listen": "127.0.0.1"}, "api": {"listen": "127.0.0.3"}})) == (
        "127.0.0.3",
        None,
    )
    address, why = listen_address(parse({"sip": {"listen": "0.0.0.0"}}))
    assert address != "0.0.0.0" and (address is None) == (why is not None)
    if why is not None:
        assert why.startswith("api.listen: sip.listen is 0.0.0.0")
    assert lan_address(ROUTES) == "127.0.0.1"
    assert lan_address(ROUTES.splitlines()[0]) is None  # no default route


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"listen": "0.0.0.0"}, "api.listen = '0.0.0.0': Value error, must be one address of this box"),
        ({"listen": "::"}, "api.listen = '::'"),
        ({"certificate": "/etc/x.crt"}, "certificate and private_key go together"),
        ({"port": 70000}, "api.port = 70000"),
        ({"auth_block_s": 100, "auth_block_max_s": 10}, "auth_block_max_s (10.0) must not be shorter"),
        ({"token": "x"}, "api.token: unknown key"),
    ],
)
def test_bad_api_config_names_the_key(section: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse({"api": section})
    assert expected in str(err.value)


def test_the_server_refuses_anything_older_than_tls_1_2(tmp_path: Path) -> None:
    files = TlsFiles(tmp_path / "c.crt", tmp_path / "c.key")
    make_certificate(files, "127.0.0.1")
    context = server_context(files)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert all(c["protocol"] in ("TLSv1.2", "TLSv1.3") for c in context.get_ciphers())


@pytest.fixture
def tokens(tmp_path: Path) -> Iterator[TokenStore]:
    store = Store(tmp_path / "lifeline.db")
    yield TokenStore(store)
    store.close()


def test_a_token_verifies_until_revoked_and_only_in_full(tokens: TokenStore) -> None:
    token, secret = tokens.create("vendor", Scope.OPERATE, "a test")
    found = tokens.verify(secret)
    assert found is not None and (found.id, found.scope, found.revoked_at) == (token.id, Scope.OPERATE, None)
    assert tokens.verify(secret + "x") is None and tokens.verify(secret[:-1]) is None
    assert tokens.verify(f"ll_{token.id}_") is None and tokens.verify("") is None
    with tokens.store.read() as conn:
        assert conn.execute("SELECT digest FROM api_tokens").fetchone()[0] == digest(secret)
    revoked = tokens.revoke(token.id, "a test")
    assert revoked is not None and revoked.revoked_at is not None
    again = tokens.verify(secret)
    assert again is not None and again.revoked_at == revoked.revoked_at  # known, and refused by its caller
    assert tokens.revoke("tnothing", "a test") is None
    with pytest.raises(ValueError, match="name: expected 1 to 64"):
        tokens.create("bad\nname", Scope.READ, "a test")
    assert [e["message"] for e in tokens.store.recent_events(2)] == [
        f"API token {token.id} ('vendor') revoked by a test",
        f"API token {token.id} ('vendor', operate) created by a test",
    ]


def test_scopes_grant_what_the_readme_says() -> None:
    assert Scope.READ.grants(Scope.READ) and not Scope.READ.grants(Scope.OPERATE)
    assert not Scope.READ.grants(Scope.WEBHOOK) and not Scope.WEBHOOK.grants(Scope.READ)
    assert Scope.OPERATE.grants(Scope.WEBHOOK) and not Scope.OPERATE.grants(Scope.ADMIN)
    assert all(Scope.ADMIN.grants(s) for s in Scope)
