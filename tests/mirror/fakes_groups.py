"""What the vendor fakes answer about ring groups: FreePBX's scoped tokens and GraphQL, Kazoo's callflows and groups.

Mixins for FakeFreePbx and FakeKazoo (tests/mirror/fakes.py), which hold the data and the helpers used here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from aiohttp import web

# league/oauth2-server's OAuthServerException::invalidScope as FreePBX's API module sends it (HTTP 400).
INVALID_SCOPE = {
    "error": "invalid_scope",
    "error_description": "The requested scope is invalid, unknown, or malformed",
    "message": "The requested scope is invalid, unknown, or malformed",
}


class FreePbxGraphql:
    """FreePBX's token endpoint (FreePBX 16: only scopes the API application was granted) and GraphQL endpoint."""

    client_id: str
    client_secret: str
    reply: dict[str, Any]
    ring_groups: dict[str, Any]
    allowed_scopes: set[str]
    tokens: dict[str, set[str]]

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if (form.get("grant_type"), form.get("client_id"), form.get("client_secret")) != (
            "client_credentials",
            self.client_id,
            self.client_secret,
        ):
            return web.json_response({"error": "invalid_client"}, status=401)
        scopes = set(str(form.get("scope", "")).split())
        # ScopeRepository::checkScope: a scope is granted when the application has it or one of its prefixes.
        refused = sorted(s for s in scopes if not any(s == a or s.startswith(a + ":") for a in self.allowed_scopes))
        if refused:
            return web.json_response({**INVALID_SCOPE, "hint": f"Check the `{refused[0]}` scope"}, status=400)
        token = f"tok-{len(self.tokens)}"
        self.tokens[token] = scopes
        return web.json_response({"token_type": "Bearer", "expires_in": 3600, "access_token": token})

    async def gql(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if auth not in self.tokens:
            return web.json_response({"error": "access_denied"}, status=401)
        query = (await request.json()).get("query", "")
        if "fetchAllExtensions" not in query:
            return web.json_response({"errors": [{"message": "unknown query"}]})
        if "fetchAllRingGroups" not in query:
            return web.json_response(self.reply)
        # Without the module's scope its fields are not in the schema at all (ApiBase::checkScope).
        if not self.tokens[auth] & {"gql", "gql:ringgroups", "gql:ringgroups:read"}:
            return web.json_response(
                {"errors": [{"message": 'Cannot query field "fetchAllRingGroups" on type "Query".'}]}
            )
        data = {**self.reply["data"], **self.ring_groups["data"]}
        return web.json_response({**self.reply, "data": data})


def listed(callflow: dict[str, Any]) -> dict[str, Any]:
    """A callflow as Kazoo's callflows/crossbar_listing view emits it (modules walked, skipped ones left out)."""
    modules: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        module = node.get("module")
        if module and module not in modules and node.get("data", {}).get("skip_module") is not True:
            modules.append(module)
        for child in node.get("children", {}).values():
            walk(child)

    walk(callflow.get("flow") or {})
    keys = ("id", "name", "type", "numbers", "patterns", "owner_id", "group_id")
    return {**{k: callflow[k] for k in keys if k in callflow}, "featurecode": False, "modules": modules, "flags": []}


class KazooCallflows:
    """Kazoo crossbar: the callflow listing and one callflow, and a group by id."""

    account: dict[str, Any]
    callflows: dict[str, dict[str, Any]]
    groups: dict[str, dict[str, Any]]
    app: web.Application
    _authorized: Callable[[web.Request], bool]  # FakeKazoo's
    _page: Callable[[web.Request, list[dict[str, Any]]], web.Response]
    _envelope: Callable[..., web.Response]

    def add_callflows(self, doc: dict[str, Any], base: str) -> None:
        self.callflows = {c["id"]: copy.deepcopy(c) for c in doc["callflows"]}
        self.groups = {g["id"]: copy.deepcopy(g) for g in doc["groups"]}
        self.app.router.add_get(base + "/callflows", self.list_callflows)
        self.app.router.add_get(base + "/callflows/{callflow_id}", self.get_callflow)
        self.app.router.add_get(base + "/groups/{group_id}", self.get_group)

    def _not_found(self) -> web.Response:
        return web.json_response({"status": "error", "error": "404", "message": "bad identifier"}, status=404)

    async def list_callflows(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"status": "error", "error": "401"}, status=401)
        return self._page(request, [listed(c) for c in self.callflows.values()])

    async def get_callflow(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"status": "error", "error": "401"}, status=401)
        callflow = self.callflows.get(request.match_info["callflow_id"])
        return self._not_found() if callflow is None else self._envelope(callflow)

    async def get_group(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"status": "error", "error": "401"}, status=401)
        group = self.groups.get(request.match_info["group_id"])
        return self._not_found() if group is None else self._envelope(group)
