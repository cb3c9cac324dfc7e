"""The daemon's JSON API over HTTPS on the LAN, for vendors: bearer tokens with scopes, failed logins blocked.

The same aiohttp application serves the unix socket and this TCP site. Requests on the socket are
trusted as before (its file mode guards it); requests over TCP need `Authorization: Bearer <token>`
whose scope grants the route's (gateway.web.routes). A failed authentication is logged in one line
that names the source address (never the token), for fail2ban:

    api authentication failed from 192.0.2.7: unknown token

and too many from one address block it (429) for a time that doubles with each block.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import math
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from gateway.config import ApiConfig, Config
from gateway.core.probes import lan_address
from gateway.errors import LifelineError
from gateway.sip.tls import CIPHERS, TlsFiles, tls_files
from gateway.web.openapi import BY_KEY
from gateway.web.routes import Handler, Route, registered
from gateway.web.tokens import TokenStore

log = structlog.get_logger("api")

REALM = "lifeline"
FAILED = "api authentication failed from"  # the start of every failure line (a fail2ban filter matches it)
STRIKES_FORGOTTEN_S = 86400.0  # a day without a block and the next one is the first again
MAX_ADDRESSES = 4096  # addresses with failures kept in memory; the oldest are forgotten beyond


class FailureLimiter:
    """Failed authentications per source address: `failures` within `window_s` block it, each block twice the last."""

    def __init__(
        self,
        failures: int,
        window_s: float,
        block_s: float,
        block_max_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures, self.window_s, self.block_s, self.block_max_s = failures, window_s, block_s, block_max_s
        self.clock = clock
        self._failed: dict[str, collections.deque[float]] = {}
        self._blocked: dict[str, float] = {}  # address → blocked until
        self._strikes: dict[str, tuple[int, float]] = {}  # address → (blocks so far, when the last one began)

    def blocked(self, address: str) -> float:
        """Seconds the address stays blocked (0: it is not)."""
        until = self._blocked.get(address)
        if until is None:
            return 0.0
        left = until - self.clock()
        if left <= 0:
            del self._blocked[address]
            return 0.0
        return left

    def fail(self, address: str) -> float:
        """Count a failure; returns the block it starts (seconds), or 0."""
        now = self.clock()
        recent = self._failed.pop(address, None) or collections.deque()
        recent.append(now)
        while recent and recent[0] <= now - self.window_s:
            recent.popleft()
        self._failed[address] = recent  # re-inserted: the dict's order is the order of last failure
        if len(self._failed) > MAX_ADDRESSES:
            del self._failed[next(iter(self._failed))]
        if len(recent) < self.failures:
            return 0.0
        del self._failed[address]
        strikes, last = self._strikes.get(address, (0, now))
        strikes = 1 if now - last > STRIKES_FORGOTTEN_S else strikes + 1
        self._strikes[address] = (strikes, now)
        if len(self._strikes) > MAX_ADDRESSES:
            del self._strikes[next(iter(self._strikes))]
        block = float(min(self.block_s * 2 ** (strikes - 1), self.block_max_s))
        self._blocked[address] = now + block
        return block


def listen_address(config: Config) -> tuple[str | None, str | None]:
    """(address, None): where the network API listens (api.listen, sip.listen, or the LAN's); (None, why) if unknown."""
    if config.api.listen is not None:
        return config.api.listen, None
    if not ipaddress.ip_address(config.sip.listen).is_unspecified:
        return config.sip.listen, None
    try:
        address = lan_address(Path("/proc/net/route").read_text())
    except OSError:
        address = None
    if address is None:
        why = (
            f"api.listen: sip.listen is {config.sip.listen} and no default route shows the LAN address; set api.listen"
        )
        return None, why
    return address, None


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """TLS 1.2 and newer, the SIP listener's ciphers, no client certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(CIPHERS)
    context.load_cert_chain(files.certificate, files.private_key)
    return context


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer …` header."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


def page_route(request: web.Request) -> bool:
    """Whether the request is for the status page (gateway.web.ui), which checks its own login and session.

    Decided by the route the router matched (the root redirect, /ui and its pages and static files), not by
    the raw path; a path under /ui/ that matches nothing gets the router's own 404 or 405.
    """
    resource = request.match_info.route.resource
    if resource is not None:
        return is_page_path(resource.canonical)
    return request.match_info.http_exception is not None and request.path.startswith("/ui/")


def is_page_path(path: str) -> bool:
    """Whether a route's path belongs to the status page: /, /ui and what is under /ui/ (not in the API's tables)."""
    return path in ("/", "/ui") or path.startswith("/ui/")


def _from_unix_socket(request: web.Request) -> bool:
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    return sock is not None and sock.family == socket.AF_UNIX


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


class NetworkApi:
    """The HTTPS site beside the unix socket, and the middleware that authenticates what comes through it."""

    def __init__(self, config: Config, tokens: TokenStore, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.api: ApiConfig = config.api
        self.tokens = tokens
        self.limiter = FailureLimiter(
            self.api.auth_failures, self.api.auth_window_s, self.api.auth_block_s, self.api.auth_block_max_s, clock
        )
        self.address: str | None = None
        self.port: int | None = None
        self.certificate: Path | None = None
        self.error: str | None = None
        self.socket_only: list[str] = []

    def resolve(self) -> str | None:
        """Where to listen (blocking: reads the route table); None when off or unknown (the reason in .error)."""
        if not self.api.enabled:
            return None
        self.address, self.error = listen_address(self.config)
        return self.address

    def install(self, app: web.Application) -> None:
        """Put the authentication in front of every route of app (before the app is frozen)."""
        app.middlewares.append(self._authenticate)

    def _tls(self, address: str) -> TlsFiles:
        if self.api.certificate is not None and self.api.private_key is not None:
            for key, path in (("api.certificate", self.api.certificate), ("api.private_key", self.api.private_key)):
                if not path.is_file():
                    raise LifelineError(f"{key} = '{path}': no such file")
            return TlsFiles(self.api.certificate, self.api.private_key)
        return tls_files(self.config, also=(address,))

    async def start(self, runner: web.AppRunner) -> None:
        """Serve runner's app over HTTPS; a failure is logged and shown in the status, SIP service goes on."""
        # The status page's routes are not the API's: no bearer token, no OpenAPI entry (they check a session).
        served = [(m, p) for m, p in registered(runner.app) if not is_page_path(p)]
        self.socket_only = [f"{m} {p}" for m, p in served if (m, p) not in BY_KEY]
        if self.socket_only:
            log.error("routes missing from the API's route table: unix socket only", routes=self.socket_only)
        if not self.api.enabled:
            return
        address = self.address if self.address is not None else await asyncio.to_thread(self.resolve)
        if address is None:
            log.error("network API not started", error=self.error)
            return
        try:
            files = await asyncio.to_thread(self._tls, address)
            context = await asyncio.to_thread(server_context, files)
            family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
            sock = socket.create_server((address, self.api.port), family=family)
            self.port = int(sock.getsockname()[1])
            await web.SockSite(runner, sock, ssl_context=context, shutdown_timeout=1.0).start()
        except (OSError, ssl.SSLError, LifelineError) as err:
            self.port = None
            self.error = f"cannot serve the network API on {address}:{self.api.port}: {err}"
            log.error("network API not started", error=self.error)
            return
        self.certificate = files.certificate
        log.info("network API listening", url=self.url, certificate=str(files.certificate))

    @property
    def url(self) -> str | None:
        """The API's base URL, once it listens."""
        if self.address is None or self.port is None:
            return None
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"https://{host}:{self.port}/api/v1/"

    def status(self) -> dict[str, Any]:
        """The network API's part of the status document."""
        return {
            "enabled": self.api.enabled,
            "url": self.url,
            "listen": self.address,
            "port": self.port,
            "certificate": str(self.certificate) if self.certificate else None,
            "error": self.error,
            "socket_only_routes": self.socket_only,
        }

    def _route(self, request: web.Request) -> Route | None:
        matched = request.match_info.route
        resource = matched.resource
        if resource is None:
            return None
        method = "GET" if matched.method == "HEAD" else matched.method
        return BY_KEY.get((method, resource.canonical))

    async def _refuse(self, request: web.Request, address: str, reason: str, invalid: bool) -> web.Response:
        # One line per failure with the address first: fail2ban's <HOST>. No token, no query string.
        log.warning(
            f"{FAILED} {address}: {reason}", source=address, method=request.method, path=request.rel_url.raw_path[:200]
        )
        block = self.limiter.fail(address)
        if block:
            message = f"API: {address} blocked for {block:g} s after {self.api.auth_failures} failed authentications"
            log.warning(message, source=address)
            await asyncio.to_thread(self.tokens.store.add_event, "api", message, {"address": address, "block_s": block})
        challenge = f'Bearer realm="{REALM}"' + (', error="invalid_token"' if invalid else "")
        return _error(401, f"{reason}: send Authorization: Bearer <token>", {"WWW-Authenticate": challenge})

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if _from_unix_socket(request):
            return await handler(request)
        if page_route(request):
            return await handler(request)  # the status page: its own login (rate-limited here too) and session
        address = request.remote or "unknown"
        wait = self.limiter.blocked(address)
        if wait:
            retry = str(math.ceil(wait))
            return _error(429, "too many failed authentications from this address", {"Retry-After": retry})
        presented = bearer(request.headers.get("Authorization"))
        if presented is None:
            return await self._refuse(request, address, "no bearer token", invalid=False)
        token = await asyncio.to_thread(self.tokens.verify, presented)
        if token is None:
            return await self._refuse(request, address, "unknown token", invalid=True)
        if token.revoked_at is not None:
            return await self._refuse(request, address, f"revoked token {token.id}", invalid=True)
        await asyncio.to_thread(self.tokens.touch, token, address)
        if request.match_info.http_exception is not None:
            return await handler(request)  # no such route or method: the router's own 404 or 405
        route = self._route(request)
        if route is None:
            return _error(404, "not served over the network")  # a route missing from the tables: socket only
        if not token.scope.grants(route.scope):
            challenge = f'Bearer realm="{REALM}", error="insufficient_scope", scope="{route.scope.value}"'
            return _error(
                403,
                f"token {token.id} has scope {token.scope.value};"
                f" {route.method} {route.path} needs {route.scope.value}",
                {"WWW-Authenticate": challenge},
            )
        request["token"] = token
        return await handler(request)
