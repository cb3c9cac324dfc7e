"""The daemon's JSON API (aiohttp): on a unix socket for the CLI, and over HTTPS for vendors (gateway.web.network).

Every endpoint has an entry in a route table next to its handlers (gateway.web.routes): the router, the
network's scope check and the OpenAPI document (gateway.web.openapi) all read it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson
from aiohttp import web

from gateway.core.mode import Override
from gateway.errors import LifelineError
from gateway.web.routes import Body, Route, Scope, add_routes

StatusProvider = Callable[[], Awaitable[dict[str, Any]]]
OverrideSetter = Callable[[Override, str], Awaitable[None]]


class MirrorControl(Protocol):
    """What the API needs of the directory mirror (gateway.mirror.service.MirrorService)."""

    def start_sync(self, *, full: bool, allow_empty: bool, reason: str) -> bool:
        """Start a sync in the background; False if one already runs."""
        ...

    def trigger(self, reason: str) -> None:
        """Pull as soon as possible."""
        ...

    async def status(self) -> dict[str, Any]:
        """The mirror's status document."""
        ...


MIRROR_ROUTES = (
    Route(
        "GET",
        "/api/v1/mirror",
        "getMirror",
        Scope.READ,
        "The directory mirror's status",
        "Source, health, counts, last good sync and last error of the mirror",
    ),
    Route(
        "POST",
        "/api/v1/mirror/sync",
        "syncMirror",
        Scope.OPERATE,
        "Start a directory sync now",
        "Whether a sync was started (false: one already runs), and the mirror's status",
        status=202,
        body=Body(
            "Optional: `full` fetches the whole directory instead of the changes; `allow_empty` accepts an empty "
            "directory (which deletes every mirrored extension)",
            {
                "type": "object",
                "properties": {"full": {"type": "boolean"}, "allow_empty": {"type": "boolean"}},
            },
            required=False,
        ),
        errors={400: "The body is not a JSON object"},
    ),
    Route(
        "POST",
        "/api/v1/mirror/webhook",
        "mirrorWebhook",
        Scope.WEBHOOK,
        "A vendor says its directory changed: pull now",
        "Accepted: a pull starts as soon as possible",
        status=202,
        description=(
            "Any body is accepted and only logged (`action` or `type`); the pull itself is authenticated against "
            "the directory. A token of scope `webhook` may call this endpoint and nothing else: give that one to "
            "the vendor's webhook configuration."
        ),
        body=Body(
            "Optional: the vendor's notification",
            {"type": "object", "properties": {"action": {"type": "string"}, "type": {"type": "string"}}},
            required=False,
        ),
    ),
)


def add_mirror_routes(app: web.Application, mirror: MirrorControl) -> None:
    """GET /api/v1/mirror; POST /api/v1/mirror/sync (start a sync now); POST /api/v1/mirror/webhook (a vendor says
    something changed: pull at once)."""

    async def get_mirror(_request: web.Request) -> web.Response:
        return web.json_response(await mirror.status())

    async def post_sync(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        if not isinstance(body, dict):
            return web.json_response({"error": "expected a JSON object"}, status=400)
        started = mirror.start_sync(
            full=bool(body.get("full")), allow_empty=bool(body.get("allow_empty")), reason="requested by hand"
        )
        return web.json_response({"started": started, "mirror": await mirror.status()}, status=202)

    async def post_webhook(request: web.Request) -> web.Response:
        # The body is only logged: any notification means "pull now"; the pull itself is authenticated.
        try:
            body = await request.json() if request.can_read_body else {}
        except ValueError:
            body = {}
        what = (body.get("action") or body.get("type") or "change") if isinstance(body, dict) else "change"
        mirror.trigger(f"vendor webhook: {what}")
        return web.json_response({"accepted": True}, status=202)

    add_routes(app, MIRROR_ROUTES, {"getMirror": get_mirror, "syncMirror": post_sync, "mirrorWebhook": post_webhook})


class TrunkControl(Protocol):
    """What the API needs of the trunk (gateway.trunk.supervisor.TrunkSupervisor)."""

    async def status(self) -> dict[str, Any]:
        """The agent's status: modems, calls, minutes."""
        ...

    async def send_sms(self, numbers: list[str], text: str) -> dict[str, str]:
        """Send text to each number; per-number result."""
        ...


TRUNK_ROUTES = (
    Route(
        "GET",
        "/api/v1/trunk",
        "getTrunk",
        Scope.READ,
        "The trunk's status",
        "Modems, calls and minutes of the GSM/LTE/analog trunk",
        description="Served only when a trunk is configured ([trunk] modems); 404 otherwise.",
    ),
    Route(
        "POST",
        "/api/v1/trunk/sms",
        "sendTrunkSms",
        Scope.OPERATE,
        "Send a test SMS through the trunk",
        "The result per number (`sent` or the error)",
        description="Served only when a trunk is configured ([trunk] modems); 404 otherwise.",
        body=Body(
            "The numbers (E.164) and the text",
            {
                "type": "object",
                "required": ["numbers", "text"],
                "properties": {
                    "numbers": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": "string", "pattern": "^\\+[0-9]{6,15}$"},
                    },
                    "text": {"type": "string", "minLength": 1, "maxLength": 160},
                },
            },
        ),
        errors={400: "A number is not in E.164 form, or the text is empty or too long", 503: "The trunk cannot send"},
    ),
)


def add_trunk_routes(app: web.Application, trunk: TrunkControl) -> None:
    """GET /api/v1/trunk; POST /api/v1/trunk/sms {"numbers": ["+49…"], "text": "…"} (an installer's test SMS)."""

    async def get_trunk(_request: web.Request) -> web.Response:
        return web.json_response(await trunk.status())

    async def post_sms(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        numbers = body.get("numbers") if isinstance(body, dict) else None
        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(numbers, list) or not numbers or not all(isinstance(n, str) for n in numbers):
            return web.json_response({"error": "numbers: expected a list of E.164 numbers"}, status=400)
        bad = [n for n in numbers if not re.fullmatch(r"\+[0-9]{6,15}", n)]
        if bad:
            return web.json_response({"error": f"numbers: {bad[0]!r} is not in E.164 form (+ and digits)"}, status=400)
        if not isinstance(text, str) or not 0 < len(text) <= 160:
            return web.json_response({"error": "text: expected 1 to 160 characters"}, status=400)
        try:
            results = await trunk.send_sms(numbers, text)
        except LifelineError as err:
            return web.json_response({"error": str(err)}, status=503)
        return web.json_response({"results": results})

    add_routes(app, TRUNK_ROUTES, {"getTrunk": get_trunk, "sendTrunkSms": post_sms})


STATUS_ROUTES = (
    Route(
        "GET",
        "/api/v1/status",
        "getStatus",
        Scope.READ,
        "Everything `lifeline status` shows",
        "Mode, SIP, registrations, health, mirror, call records, trunk, network API, paths and recent events",
        description=(
            "`registrations.phones` lists each registered contact: `extension`, `name` (from the directory), "
            "`source` and `transport` (where the phone is reached), `user_agent`, `expires_s`/`expires_at`, and "
            "`taken`: `cloud` (relayed in NORMAL, the cloud's answer copied) or `local` (taken by Lifeline itself: "
            "SURVIVAL, or no cloud), with `mode`, the mode when the binding was last saved. The user agent of a "
            "binding copied from the cloud's answer is unknown (null). No secret (HA1, Authorization) is ever listed."
        ),
    ),
    Route(
        "PUT",
        "/api/v1/mode",
        "setMode",
        Scope.OPERATE,
        "Set the mode by hand (a drill), or back to automatic",
        "The status after the change",
        body=Body(
            "The override and why (recorded with the change)",
            {
                "type": "object",
                "required": ["mode"],
                "properties": {
                    "mode": {"type": "string", "enum": [o.value for o in Override]},
                    "reason": {"type": "string"},
                },
            },
        ),
        errors={400: "mode is not one of auto, normal, survival"},
    ),
)


def json_document(document: Any) -> web.Response:
    """A large JSON answer (the status document lists every phone of the branch), encoded by orjson."""
    # The standard library's encoder took a fifth of the daemon's CPU while status pages polled a branch
    # of 1,000 phones (bench/api); orjson encodes the same document several times faster.
    return web.Response(body=orjson.dumps(document, option=orjson.OPT_NON_STR_KEYS), content_type="application/json")


def build_api(status: StatusProvider, set_override: OverrideSetter) -> web.Application:
    """The aiohttp application with the status and mode endpoints."""
    app = web.Application()

    async def get_status(_request: web.Request) -> web.Response:
        return json_document(await status())

    async def put_mode(request: web.Request) -> web.Response:
        try:
            body = await request.json()
            override = Override(body["mode"])
        except (ValueError, KeyError, TypeError):
            allowed = ", ".join(o.value for o in Override)
            return web.json_response({"error": f"mode: expected one of {allowed}"}, status=400)
        reason = str(body.get("reason") or f"set by hand to {override.value}")
        await set_override(override, reason)
        return json_document(await status())

    add_routes(app, STATUS_ROUTES, {"getStatus": get_status, "setMode": put_mode})
    return app
