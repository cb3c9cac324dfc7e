"""The daemon's JSON API (aiohttp), served on a unix socket for the CLI."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from gateway.core.mode import Override
from gateway.errors import LifelineError

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

    app.router.add_get("/api/v1/mirror", get_mirror)
    app.router.add_post("/api/v1/mirror/sync", post_sync)
    app.router.add_post("/api/v1/mirror/webhook", post_webhook)


class TrunkControl(Protocol):
    """What the API needs of the trunk (gateway.trunk.supervisor.TrunkSupervisor)."""

    async def status(self) -> dict[str, Any]:
        """The agent's status: modems, calls, minutes."""
        ...

    async def send_sms(self, numbers: list[str], text: str) -> dict[str, str]:
        """Send text to each number; per-number result."""
        ...


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

    app.router.add_get("/api/v1/trunk", get_trunk)
    app.router.add_post("/api/v1/trunk/sms", post_sms)


def build_api(status: StatusProvider, set_override: OverrideSetter) -> web.Application:
    """The aiohttp application with the status and mode endpoints."""
    app = web.Application()

    async def get_status(_request: web.Request) -> web.Response:
        return web.json_response(await status())

    async def put_mode(request: web.Request) -> web.Response:
        try:
            body = await request.json()
            override = Override(body["mode"])
        except (ValueError, KeyError, TypeError):
            allowed = ", ".join(o.value for o in Override)
            return web.json_response({"error": f"mode: expected one of {allowed}"}, status=400)
        reason = str(body.get("reason") or f"set by hand to {override.value}")
        await set_override(override, reason)
        return web.json_response(await status())

    app.router.add_get("/api/v1/status", get_status)
    app.router.add_put("/api/v1/mode", put_mode)
    return app
