"""The OpenAPI 3.1 document of the daemon's API, generated from the route tables the router and scope check use.

`python -m gateway.web.openapi` rewrites gateway/web/openapi.json; a test fails when it drifts, and when
the daemon's router serves a route the tables do not list. The daemon serves it at GET /api/v1/openapi.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.drill.routes import DRILL_ROUTES
from gateway.web.api import MIRROR_ROUTES, STATUS_ROUTES, TRUNK_ROUTES
from gateway.web.routes import GRANTS, METRICS_ROUTES, Route, Scope, add_routes, index
from gateway.web.tokens import TOKEN_ROUTES
from gateway.web.ui.passwords import PASSWORD_ROUTES

OPENAPI_FILE = Path(__file__).resolve().parent / "openapi.json"

OPENAPI_ROUTES = (
    Route(
        "GET",
        "/api/v1/openapi.json",
        "getOpenApi",
        Scope.READ,
        "This document",
        "The OpenAPI 3.1 document of this API",
    ),
)

# Every endpoint the daemon may serve, in the order the document lists them.
ROUTES: tuple[Route, ...] = (
    *STATUS_ROUTES,
    *MIRROR_ROUTES,
    *TRUNK_ROUTES,
    *DRILL_ROUTES,
    *TOKEN_ROUTES,
    *PASSWORD_ROUTES,
    *OPENAPI_ROUTES,
    *METRICS_ROUTES,
)
BY_KEY = index(ROUTES)

NETWORK_ERRORS = {
    401: "No bearer token, or an unknown or revoked one (network only; WWW-Authenticate: Bearer)",
    403: "The token's scope does not allow this endpoint (network only)",
    429: "Too many failed authentications from this address: wait Retry-After seconds (network only)",
}

DESCRIPTION = (
    "The JSON API of a Lifeline branch-office survivability gateway. The CLI reaches it on the daemon's unix "
    "socket (trusted: the socket's file permissions guard it); vendors reach it over HTTPS on the LAN "
    "(`[api]`: port 8443 on the SIP address by default, with the box's TLS certificate) with a bearer token "
    "made by `lifeline token create --name NAME --scope SCOPE`. Scopes: "
    + "; ".join(f"`{s.value}` grants {', '.join(sorted(g.value for g in GRANTS[s]))}" for s in Scope)
    + ". Each operation names the scope it needs in `x-lifeline-scope`. By default ten failed authentications "
    "within a minute from one address block it (429) for a minute, doubling with each further block."
)


def _operation(route: Route) -> dict[str, Any]:
    content = {"application/json": {"schema": {"type": "object"}}}
    if route.response_type != "application/json":
        content = {route.response_type: {"schema": {"type": "string"}}}
    responses: dict[str, Any] = {str(route.status): {"description": route.response, "content": content}}
    for status, text in sorted({**route.errors, **NETWORK_ERRORS}.items()):
        responses[str(status)] = {"description": text, "content": {"application/json": {"schema": _ERROR}}}
    operation: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": [route.path.split("/")[3] if route.path.startswith("/api/v1/") else route.path.strip("/")],
        "security": [{"bearer": [route.scope.value]}],
        "x-lifeline-scope": route.scope.value,
    }
    if route.description:
        operation["description"] = route.description
    params = [seg[1:-1] for seg in route.path.split("/") if seg.startswith("{") and seg.endswith("}")]
    if params:
        operation["parameters"] = [
            {"in": "path", "name": p, "required": True, "schema": {"type": "string"}} for p in params
        ]
    if route.body is not None:
        operation["requestBody"] = {
            "description": route.body.description,
            "required": route.body.required,
            "content": {"application/json": {"schema": route.body.schema}},
        }
    operation["responses"] = responses
    return operation


_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}}


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route in the tables."""
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Lifeline gateway API", "version": "1", "description": DESCRIPTION},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token made by `lifeline token create` (`ll_<id>_<secret>`)",
                }
            }
        },
    }


def render(doc: dict[str, Any]) -> str:
    """Stable JSON text of the document (what the checked-in file holds)."""
    return json.dumps(doc, indent=2) + "\n"


def add_openapi_route(app: web.Application) -> None:
    """GET /api/v1/openapi.json: this document, as the code generates it."""
    text = render(document())

    async def get_openapi(_request: web.Request) -> web.Response:
        return web.Response(text=text, content_type="application/json")

    add_routes(app, OPENAPI_ROUTES, {"getOpenApi": get_openapi})


def main() -> None:
    """Write gateway/web/openapi.json."""
    OPENAPI_FILE.write_text(render(document()))
    print(f"wrote {OPENAPI_FILE}")


if __name__ == "__main__":
    main()
