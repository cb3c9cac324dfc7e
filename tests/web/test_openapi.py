"""The OpenAPI document is generated from the route tables the router and the scope check read, and checked in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gateway.config import parse
from gateway.core.mode import Override
from gateway.drill.model import DrillResult
from gateway.drill.routes import add_drill_routes
from gateway.store import Store
from gateway.web import openapi
from gateway.web.api import add_mirror_routes, add_trunk_routes, build_api
from gateway.web.metrics import add_metrics_routes
from gateway.web.network import NetworkApi, is_page_path
from gateway.web.routes import Route, Scope, add_routes, registered
from gateway.web.tokens import TokenStore, add_token_routes
from gateway.web.ui.page import StatusPage


class Mirror:
    def start_sync(self, *, full: bool, allow_empty: bool, reason: str) -> bool:
        return True

    def trigger(self, reason: str) -> None:
        pass

    async def status(self) -> dict[str, Any]:
        return {}


class Trunk:
    async def status(self) -> dict[str, Any]:
        return {}

    async def send_sms(self, numbers: list[str], text: str) -> dict[str, str]:
        return {}


class Drill:
    def begin(self, *, emergency_test: bool = False, force: bool = False) -> DrillResult:
        raise NotImplementedError

    def status(self) -> dict[str, Any]:
        return {}

    async def report(self, report_id: str, fmt: str) -> str | None:
        return None


async def no_status() -> dict[str, Any]:
    return {}


async def no_override(override: Override, reason: str) -> None:
    pass


def daemon_api(tokens: TokenStore) -> web.Application:
    """Every route the daemon serves, registered as gateway.app.App.start registers them (with a trunk)."""
    app = build_api(no_status, no_override)
    add_mirror_routes(app, Mirror())
    add_trunk_routes(app, Trunk())
    add_drill_routes(app, Drill())
    add_token_routes(app, tokens)
    openapi.add_openapi_route(app)
    add_metrics_routes(app, no_status)
    network = NetworkApi(parse({"api": {"enabled": False}}), tokens)
    StatusPage(
        status=no_status,
        set_override=no_override,
        drill=Drill(),
        mirror=Mirror(),
        store=tokens.store,
        limiter=network.limiter,
        health=dict,
    ).install(app)
    return app


@pytest.fixture
def tokens(tmp_path: Path) -> Iterator[TokenStore]:
    store = Store(tmp_path / "lifeline.db")
    yield TokenStore(store)
    store.close()


def test_the_checked_in_document_is_what_the_code_generates() -> None:
    # Regenerate with `python -m gateway.web.openapi` after changing a route table.
    assert openapi.OPENAPI_FILE.read_text() == openapi.render(openapi.document())


def test_every_route_the_router_serves_is_in_the_document_and_the_other_way_round(tokens: TokenStore) -> None:
    doc = json.loads(openapi.OPENAPI_FILE.read_text())
    documented = sorted((method.upper(), path) for path, ops in doc["paths"].items() for method in ops)
    # The status page (/ and /ui/…) is HTML behind a login session, not the bearer-token API: not documented.
    every = registered(daemon_api(tokens))
    served = [(method, path) for method, path in every if not is_page_path(path)]
    assert served == documented
    assert ("GET", "/ui/") in every and not any(path.startswith("/ui") for path in doc["paths"])
    assert ("PUT", "/api/v1/mode") in served and ("DELETE", "/api/v1/tokens/{id}") in served


def test_each_operation_names_its_scope_and_its_network_errors() -> None:
    doc = openapi.document()
    ops = {(m.upper(), p): op for p, item in doc["paths"].items() for m, op in item.items()}
    assert ops[("GET", "/api/v1/status")]["x-lifeline-scope"] == "read"
    assert ops[("PUT", "/api/v1/mode")]["security"] == [{"bearer": ["operate"]}]
    assert ops[("POST", "/api/v1/mirror/webhook")]["x-lifeline-scope"] == "webhook"
    assert ops[("POST", "/api/v1/tokens")]["x-lifeline-scope"] == "admin"
    assert ops[("PUT", "/api/v1/mode")]["requestBody"]["content"]["application/json"]["schema"]["properties"]["mode"][
        "enum"
    ] == ["auto", "normal", "survival"]
    assert ops[("DELETE", "/api/v1/tokens/{id}")]["parameters"][0]["name"] == "id"
    assert all({"401", "403", "429"} <= set(op["responses"]) for op in ops.values())
    assert len({op["operationId"] for op in ops.values()}) == len(ops)


def test_a_handler_without_a_table_entry_is_refused() -> None:
    app = web.Application()
    route = Route("GET", "/x", "getX", Scope.READ, "x", "x")

    async def handler(request: web.Request) -> web.Response:
        return web.json_response({})

    with pytest.raises(ValueError, match="route table and handlers differ"):
        add_routes(app, [route], {"getX": handler, "getY": handler})


async def test_a_route_added_outside_the_tables_is_found_and_kept_off_the_network(tokens: TokenStore) -> None:
    app = daemon_api(tokens)

    async def secret_door(request: web.Request) -> web.Response:
        return web.json_response({})

    app.router.add_post("/api/v1/secret-door", secret_door)
    network = NetworkApi(parse({"api": {"enabled": False}}), tokens)
    network.install(app)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await network.start(runner)
    finally:
        await runner.cleanup()
    assert network.socket_only == ["POST /api/v1/secret-door"]
    assert network.status()["socket_only_routes"] == ["POST /api/v1/secret-door"]
