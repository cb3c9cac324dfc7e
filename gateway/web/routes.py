"""The API's route table: one entry per endpoint, read by the router, the network's scope check and OpenAPI.

Each module keeps its table next to its handlers and registers them with `add_routes`, which refuses a
handler without an entry (or an entry without a handler): what the router serves, what a token may do
and what the published document says cannot drift apart.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Scope(enum.StrEnum):
    """What a bearer token may do over the network (the unix socket is trusted as a whole)."""

    READ = "read"  # GET endpoints: status, mirror, trunk, this document
    WEBHOOK = "webhook"  # only POST /api/v1/mirror/webhook: a token a vendor's webhook config can carry
    OPERATE = "operate"  # read and webhook, plus what changes the box's behaviour: mode, mirror sync, test SMS
    ADMIN = "admin"  # everything, token management included

    def grants(self, needed: Scope) -> bool:
        """Whether a token of this scope may call an endpoint that needs `needed`."""
        return needed in GRANTS[self]


GRANTS: dict[Scope, frozenset[Scope]] = {
    Scope.READ: frozenset({Scope.READ}),
    Scope.WEBHOOK: frozenset({Scope.WEBHOOK}),
    Scope.OPERATE: frozenset({Scope.READ, Scope.WEBHOOK, Scope.OPERATE}),
    Scope.ADMIN: frozenset(Scope),
}


@dataclass(frozen=True)
class Body:
    """A JSON request body: what it means and its JSON Schema."""

    description: str
    schema: dict[str, Any]
    required: bool = True


@dataclass(frozen=True)
class Route:
    """One endpoint: its method and path, who may call it over the network, and what it takes and answers."""

    method: str
    path: str
    operation_id: str
    scope: Scope
    summary: str
    response: str
    status: int = 200
    description: str = ""
    body: Body | None = None
    errors: Mapping[int, str] = field(default_factory=dict)
    response_type: str = "application/json"

    @property
    def key(self) -> tuple[str, str]:
        """(method, path) as the router names the route."""
        return self.method, self.path


# Served by gateway/web/metrics.py; listed here so the network's scope check and the document know it.
METRICS_ROUTES = (
    Route(
        "GET",
        "/metrics",
        "getMetrics",
        Scope.READ,
        "Prometheus metrics",
        "The metrics in Prometheus' text exposition format",
        description="Scrape with `authorization: {credentials_file: …}` in the Prometheus job.",
        response_type="text/plain",
    ),
)


def add_routes(app: web.Application, table: Iterable[Route], handlers: Mapping[str, Handler]) -> None:
    """Register each route of the table with its handler (keyed by operation id); both sides must match."""
    routes = list(table)
    ids = {route.operation_id for route in routes}
    if ids != set(handlers):
        raise ValueError(f"route table and handlers differ: {sorted(ids ^ set(handlers))}")
    for route in routes:
        app.router.add_route(route.method, route.path, handlers[route.operation_id], name=route.operation_id)


def index(table: Iterable[Route]) -> dict[tuple[str, str], Route]:
    """The table keyed by (method, path); a duplicate is a programming error."""
    found: dict[tuple[str, str], Route] = {}
    for route in table:
        if route.key in found:
            raise ValueError(f"route {route.method} {route.path} is listed twice")
        found[route.key] = route
    return found


def registered(app: web.Application) -> list[tuple[str, str]]:
    """(method, path) of every route the app's router serves (HEAD, added beside GET by add_get, left out)."""
    return sorted(
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    )
