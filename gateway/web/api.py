"""The daemon's JSON API (aiohttp), served on a unix socket for the CLI."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gateway.core.mode import Override

StatusProvider = Callable[[], Awaitable[dict[str, Any]]]
OverrideSetter = Callable[[Override, str], Awaitable[None]]


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
