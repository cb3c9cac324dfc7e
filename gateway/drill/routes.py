"""The drill's API: POST /api/v1/drill starts one, GET shows it, GET …/report/<id>.html|.json serves its reports."""

from __future__ import annotations

import re
from typing import Any, Protocol

from aiohttp import web

from gateway.drill.model import DrillResult
from gateway.drill.runner import DrillError
from gateway.drill.service import DrillBusyError, DrillRefusedError
from gateway.web.routes import Body, Route, Scope, add_routes

REPORT_NAME = re.compile(r"^(?P<id>[0-9A-Za-z-]{1,40})\.(?P<fmt>json|html)$")
CONTENT_TYPES = {"json": "application/json", "html": "text/html"}
OPTIONS = ("emergency_test", "force")

DRILL_ROUTES = (
    Route(
        "POST",
        "/api/v1/drill",
        "startDrill",
        Scope.OPERATE,
        "Start a disaster-recovery drill",
        "The drill as it starts; follow it with GET /api/v1/drill",
        status=202,
        description=(
            "Forces SURVIVAL, checks that the registrations are served locally, places the test calls of [drill] "
            "(audio checked both ways), returns to the override before it and checks the test calls' records. "
            "One at a time; refused while the box is not in NORMAL unless forced."
        ),
        body=Body(
            "Options (all false when left out)",
            {
                "type": "object",
                "properties": {
                    "emergency_test": {"type": "boolean", "description": "also call [drill] emergency_test_number"},
                    "force": {"type": "boolean", "description": "drill although the box is not in NORMAL"},
                },
            },
            required=False,
        ),
        errors={
            400: "A bad body, or [drill] lacks what the drill needs (caller and callee, emergency_test_number)",
            409: "A drill is running, or the box is not in NORMAL (a real outage or an override)",
        },
    ),
    Route(
        "GET",
        "/api/v1/drill",
        "getDrill",
        Scope.READ,
        "The running (or last) drill",
        "Its state, the drill in full (timeline, checks, calls, records) and the last drill's summary",
    ),
    Route(
        "GET",
        "/api/v1/drill/report/{name}",
        "getDrillReport",
        Scope.READ,
        "A drill's report",
        "The report an auditor keeps: name is <id>.html (HTML) or <id>.json (the same data as JSON)",
        response_type="text/html",
        errors={404: "No such report"},
    ),
)


class DrillControl(Protocol):
    """What the API needs of the drill (gateway.drill.service.DrillService)."""

    def begin(self, *, emergency_test: bool = False, force: bool = False) -> DrillResult:
        """Start a drill in the background."""
        ...

    def status(self) -> dict[str, Any]:
        """The running or last drill."""
        ...

    async def report(self, report_id: str, fmt: str) -> str | None:
        """A stored report's text, None if there is none."""
        ...


def add_drill_routes(app: web.Application, drill: DrillControl) -> None:
    """POST /api/v1/drill {"emergency_test": bool, "force": bool} (409 while one runs or in a real outage);
    GET /api/v1/drill; GET /api/v1/drill/report/<id>.html|.json."""

    async def post_drill(request: web.Request) -> web.Response:
        try:
            body = await request.json() if request.can_read_body else {}
        except ValueError:
            body = None
        if not isinstance(body, dict) or not all(isinstance(body.get(k, False), bool) for k in OPTIONS):
            expected = 'expected {"emergency_test": true|false, "force": true|false}'
            return web.json_response({"error": expected}, status=400)
        try:
            drill.begin(emergency_test=bool(body.get("emergency_test")), force=bool(body.get("force")))
        except (DrillBusyError, DrillRefusedError) as err:
            return web.json_response({"error": str(err), **drill.status()}, status=409)
        except DrillError as err:
            return web.json_response({"error": str(err)}, status=400)
        return web.json_response(drill.status(), status=202)

    async def get_drill(_request: web.Request) -> web.Response:
        return web.json_response(drill.status())

    async def get_report(request: web.Request) -> web.Response:
        match = REPORT_NAME.match(request.match_info["name"])
        text = await drill.report(match["id"], match["fmt"]) if match else None
        if match is None or text is None:
            return web.json_response({"error": "no such drill report"}, status=404)
        return web.Response(text=text, content_type=CONTENT_TYPES[match["fmt"]], charset="utf-8")

    add_routes(app, DRILL_ROUTES, {"startDrill": post_drill, "getDrill": get_drill, "getDrillReport": get_report})
