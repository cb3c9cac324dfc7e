"""Fake directory servers (aiohttp on 127.0.0.1) that answer like the vendors' documented APIs.

Each fake keeps its directory in plain dicts the test edits, and a `fault` hook a test sets to make
the next requests fail in a chosen way.
"""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web

from tests.mirror.fakes_groups import FreePbxGraphql, KazooCallflows
from tests.served import served_in_thread

Fault = Callable[[web.Request], Awaitable[web.StreamResponse | None]]


async def serve(app: web.Application, ssl_context: ssl.SSLContext | None = None) -> tuple[web.AppRunner, str]:
    """Start app on a free port of 127.0.0.1; returns the runner and the base URL."""
    # A short shutdown: a handler that never answers (the timeout case) must not hold the teardown.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def running(app: web.Application, ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    """Serve app while the block runs; yields the base URL."""
    runner, url = await serve(app, ssl_context)
    try:
        yield url
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def in_thread(app: web.Application) -> Iterator[str]:
    """Serve app from a thread with its own event loop (for synchronous tests that drive pjsua2); yields its URL."""
    # A short shutdown, as serve's.
    with served_in_thread(
        app, lambda runner: web.TCPSite(runner, "127.0.0.1", 0), access_log=None, shutdown_timeout=0.5
    ) as runner:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"


class FakeVendor:
    """What all fakes share: the request log, the fault hook and the bearer check."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.fault: Fault | None = None
        self.app = web.Application(middlewares=[self._middleware])

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs, dict(request.headers)))
        if self.fault is not None:
            response = await self.fault(request)
            if response is not None:
                return response
        result: web.StreamResponse = await handler(request)
        return result


class FakeLifelineApi(FakeVendor):
    """The Lifeline directory API as gateway/mirror/api/openapi.json describes it."""

    def __init__(self, token: str = "test-token", realm: str = "asterisk") -> None:
        super().__init__()
        self.token = token
        self.realm = realm
        self.records: dict[str, dict[str, Any]] = {}
        self.groups: list[dict[str, Any]] = []
        self.version = 0
        self.changes: list[tuple[int, str]] = []  # (version, id) of every change, deletions included
        self.oldest_cursor = 0  # cursors older than this get 410 Gone
        self.app.router.add_get("/v1/directory", self.directory)

    def put(self, record: dict[str, Any]) -> None:
        """Add or change an extension (a JSON object of the API)."""
        self.version += 1
        self.records[record["id"]] = record
        self.changes.append((self.version, record["id"]))

    def delete(self, vendor_id: str) -> None:
        """Delete an extension (a tombstone for `since` listings)."""
        self.version += 1
        del self.records[vendor_id]
        self.changes.append((self.version, vendor_id))

    def set_groups(self, groups: list[dict[str, Any]]) -> None:
        """Replace the groups."""
        self.version += 1
        self.groups = groups

    async def directory(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": "invalid token"}, status=401)
        etag = f'"v{self.version}"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        limit = int(request.query.get("limit", "1000"))
        since = request.query.get("since")
        if since is not None and int(since) < self.oldest_cursor:
            return web.json_response({"error": "cursor expired"}, status=410)
        if since is None:
            items = [self.records[k] for k in sorted(self.records)]
            deleted: list[dict[str, str]] = []
        else:
            changed = sorted({vid for version, vid in self.changes if version > int(since)})
            items = [self.records[v] for v in changed if v in self.records]
            deleted = [{"id": v} for v in changed if v not in self.records]
        offset = int(request.query.get("page", "0"))
        chunk = items[offset : offset + limit]
        last = offset + limit >= len(items)
        body: dict[str, Any] = {
            "version": 1,
            "realm": self.realm,
            "full": since is None,
            "total": len(items),
            "extensions": chunk,
            "deleted": deleted if last else [],
            "next": None if last else str(offset + limit),
            "cursor": str(self.version) if last else None,
        }
        if last:
            body["groups"] = self.groups
        return web.Response(text=json.dumps(body), content_type="application/json", headers={"ETag": etag})


def lifeline_record(number: str, password: str, **extra: Any) -> dict[str, Any]:
    """An extension object of the Lifeline directory API."""
    return {"id": f"id-{number}", "number": number, "display_name": f"Ext {number}", "password": password, **extra}


DATA = __import__("pathlib").Path(__file__).resolve().parent.parent / "data" / "mirror"


def load(name: str) -> Any:
    """A fixture of tests/data/mirror/ (the vendors' documented payloads)."""
    return json.loads((DATA / name).read_text())


class FakeFreePbx(FreePbxGraphql, FakeVendor):
    """FreePBX's API module: OAuth2 client-credentials token endpoint and the GraphQL endpoint."""

    kind = "freepbx"

    def __init__(self, client_id: str = "lifeline-client", client_secret: str = "client-secret-xyz") -> None:
        super().__init__()
        self.client_id, self.client_secret = client_id, client_secret
        self.reply = load("freepbx_fetchAllExtensions.json")
        self.ring_groups = load("freepbx_fetchAllRingGroups.json")
        self.allowed_scopes = {"gql:core", "gql:ringgroups"}  # the API application's
        self.tokens: dict[str, set[str]] = {}  # token -> its scopes
        self.app.router.add_post("/admin/api/api/token", self.token)
        self.app.router.add_post("/admin/api/api/gql", self.gql)

    @property
    def items(self) -> list[dict[str, Any]]:
        return list(self.reply["data"]["fetchAllExtensions"]["extension"])

    @property
    def groups(self) -> list[dict[str, Any]]:
        return list(self.ring_groups["data"]["fetchAllRingGroups"]["ringgroups"])

    def set_password(self, number: str, password: str) -> None:
        for item in self.items:
            if item["extensionId"] == number:
                item["user"]["extPassword"] = password

    def remove(self, number: str) -> None:
        result = self.reply["data"]["fetchAllExtensions"]
        result["extension"] = [i for i in result["extension"] if i["extensionId"] != number]
        result["totalCount"] = len(result["extension"])

    def mirror_config(self, url: str) -> dict[str, Any]:
        return {"source": "freepbx", "url": url, "client_id": self.client_id, "client_secret": self.client_secret}


class FakeKazoo(KazooCallflows, FakeVendor):
    """Kazoo crossbar v2: api_auth, account, users, devices (paginated with start keys), phone numbers, callflows."""

    kind = "kazoo"

    def __init__(self, api_key: str = "kazoo-api-key-0123") -> None:
        super().__init__()
        self.api_key = api_key
        doc = load("kazoo_account.json")
        self.account: dict[str, Any] = doc["account"]
        self.users: list[dict[str, Any]] = doc["users"]
        self.devices: dict[str, dict[str, Any]] = {d["id"]: d for d in doc["devices"]}
        self.phone_numbers: dict[str, dict[str, Any]] = doc["phone_numbers"]
        self.page_size_seen: list[str] = []
        base = f"/v2/accounts/{self.account['id']}"
        self.app.router.add_put("/v2/api_auth", self.api_auth)
        self.app.router.add_get(base, self.get_account)
        self.app.router.add_get(base + "/users", self.list_users)
        self.app.router.add_get(base + "/devices", self.list_devices)
        self.app.router.add_get(base + "/devices/{device_id}", self.get_device)
        self.app.router.add_get(base + "/phone_numbers/{number}", self.get_phone_number)
        self.add_callflows(doc, base)

    def set_password(self, number: str, password: str) -> None:
        for dev in self.devices.values():
            if dev.get("caller_id", {}).get("internal", {}).get("number") == number:
                dev["sip"]["password"] = password

    def remove(self, number: str) -> None:
        for vid, dev in list(self.devices.items()):
            if dev.get("caller_id", {}).get("internal", {}).get("number") == number:
                del self.devices[vid]

    def mirror_config(self, url: str) -> dict[str, Any]:
        return {"source": "kazoo", "url": url, "account_id": self.account["id"], "api_key": self.api_key}

    def _envelope(self, data: Any, **extra: Any) -> web.Response:
        return web.json_response(
            {
                "auth_token": "kz-token",
                "data": data,
                "request_id": "req-1",
                "revision": "1-abc",
                "status": "success",
                **extra,
            }
        )

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("X-Auth-Token") == "kz-token"

    async def api_auth(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("data", {}).get("api_key") != self.api_key:
            return web.json_response({"status": "error", "message": "invalid credentials", "error": "401"}, status=401)
        return web.json_response(
            {"auth_token": "kz-token", "data": {"account_id": self.account["id"], "is_reseller": False},
             "status": "success", "request_id": "req-0", "revision": "undefined"},
            status=201,
        )  # fmt: skip

    async def get_account(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"status": "error", "error": "401"}, status=401)
        return self._envelope(self.account)

    def _page(self, request: web.Request, items: list[dict[str, Any]]) -> web.Response:
        size = int(request.query.get("page_size", "50"))
        start = int(request.query.get("start_key", "0"))
        chunk = items[start : start + size]
        extra: dict[str, Any] = {"page_size": len(chunk), "start_key": str(start)}
        if start + size < len(items):
            extra["next_start_key"] = str(start + size)
        return self._envelope(chunk, **extra)

    async def list_users(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"status": "error", "error": "401"}, status=401)
        return self._page(request, self.users)

    async def list_devices(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"status": "error", "error": "401"}, status=401)
        summary = [
            {"id": d["id"], "name": d["name"], "owner_id": d.get("owner_id"), "username": d["sip"]["username"],
             "enabled": d["enabled"], "device_type": d["device_type"], "mac_address": ""}
            for d in self.devices.values()
        ]  # fmt: skip
        return self._page(request, summary)

    async def get_device(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"status": "error", "error": "401"}, status=401)
        device = self.devices.get(request.match_info["device_id"])
        if device is None:
            return web.json_response({"status": "error", "error": "404", "message": "bad identifier"}, status=404)
        return self._envelope(device)

    async def get_phone_number(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"status": "error", "error": "401"}, status=401)
        number = self.phone_numbers.get(request.match_info["number"])
        if number is None:
            return web.json_response(
                {"data": {"message": "bad identifier", "not_found": "The number could not be found"},
                 "error": "404", "message": "bad_identifier", "status": "error"},
                status=404,
            )  # fmt: skip
        return self._envelope(number)


class FakeWazo(FakeVendor):
    """wazo-confd 1.1: /users, /lines, /endpoints/sip/{uuid}?view=merged, /groups (limit/offset, {total, items})."""

    kind = "wazo"

    def __init__(self, token: str = "wazo-token-abc") -> None:
        super().__init__()
        self.token = token
        doc = load("wazo_confd.json")
        self.users: list[dict[str, Any]] = doc["users"]
        self.lines: list[dict[str, Any]] = doc["lines"]
        self.endpoints: dict[str, dict[str, Any]] = doc["endpoints"]
        self.groups: list[dict[str, Any]] = doc["groups"]
        self.app.router.add_get("/users", self.listing(lambda: self.users))
        self.app.router.add_get("/lines", self.listing(lambda: self.lines))
        self.app.router.add_get("/groups", self.listing(lambda: self.groups))
        self.app.router.add_get("/endpoints/sip/{uuid}", self.endpoint)

    def set_password(self, number: str, password: str) -> None:
        for line in self.lines:
            if line["extensions"][0]["exten"] == number:
                options = self.endpoints[line["endpoint_sip"]["uuid"]]["auth_section_options"]
                options[:] = [[k, password if k == "password" else v] for k, v in options]

    def remove(self, number: str) -> None:
        self.lines = [line for line in self.lines if line["extensions"][0]["exten"] != number]

    def mirror_config(self, url: str) -> dict[str, Any]:
        return {"source": "wazo", "url": url, "token": self.token}

    def listing(self, items: Callable[[], list[dict[str, Any]]]) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            if request.headers.get("X-Auth-Token") != self.token:
                return web.json_response({"reason": ["Unauthorized"], "status_code": 401}, status=401)
            every = items()
            offset = int(request.query.get("offset", "0"))
            limit = int(request.query.get("limit", str(len(every) or 1)))
            return web.json_response({"total": len(every), "items": every[offset : offset + limit]})

        return handler

    async def endpoint(self, request: web.Request) -> web.Response:
        if request.headers.get("X-Auth-Token") != self.token:
            return web.json_response({"reason": ["Unauthorized"], "status_code": 401}, status=401)
        found = self.endpoints.get(request.match_info["uuid"])
        if found is None or request.query.get("view") != "merged":
            return web.json_response({"reason": ["Resource Not Found"], "status_code": 404}, status=404)
        return web.json_response(found)


class LifelineVendor(FakeLifelineApi):
    """The Lifeline directory API fake with the same editing interface as the vendor fakes."""

    kind = "lifeline"

    def __init__(self, passwords: dict[str, str]) -> None:
        super().__init__()
        for number, password in passwords.items():
            self.put(lifeline_record(number, password))

    def set_password(self, number: str, password: str) -> None:
        self.put(lifeline_record(number, password))

    def remove(self, number: str) -> None:
        self.delete(f"id-{number}")

    def mirror_config(self, url: str) -> dict[str, Any]:
        return {"source": "lifeline", "url": url, "token": self.token}
