"""The status page's passwords (admin, read-only viewer): made here, only their scrypt hashes stored.

While the daemon runs only the daemon writes them (`lifeline admin password` asks it over the unix
socket, PUT/DELETE /api/v1/passwords/{role}); without a daemon the CLI writes the store itself. A new or
removed password ends the sessions of its role at once (gateway.web.ui.page checks each use).
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from gateway.errors import StoreError
from gateway.hw.admin import hash_password, new_password
from gateway.store import Store
from gateway.web.routes import Route, Scope, add_routes
from gateway.web.tokens import Token
from gateway.web.ui.sessions import PASSWORD_KEYS, Role

PASSWORD_ROUTES = (
    Route(
        "PUT",
        "/api/v1/passwords/{role}",
        "setPassword",
        Scope.ADMIN,
        "Make a new status page password for a role (admin or viewer)",
        "The new `password` (shown this once: only its scrypt hash is stored); the role's sessions end",
        errors={404: "No such role (admin, viewer)"},
    ),
    Route(
        "DELETE",
        "/api/v1/passwords/{role}",
        "removePassword",
        Scope.ADMIN,
        "Remove the read-only (viewer) password",
        "The role whose password is gone; its sessions end",
        errors={400: "The admin password cannot be removed, only replaced", 404: "No such role (admin, viewer)"},
    ),
)


def set_password(store: Store, by: str, role: Role = Role.ADMIN) -> str:
    """Make a new password of role, store its scrypt hash (the admin's is the one the button's reset writes)."""
    password = new_password()
    store.set_state(PASSWORD_KEYS[role], {"hash": hash_password(password), "set_at": time.time(), "by": by})
    store.add_event("admin", f"{role.value} password set ({by})")
    return password


def remove_viewer_password(store: Store, by: str) -> None:
    """Remove the read-only password: nobody logs in as a viewer any more."""
    store.set_state(PASSWORD_KEYS[Role.VIEWER], None)
    store.add_event("admin", f"viewer password removed ({by})")


def _role(request: web.Request) -> Role:
    try:
        return Role(request.match_info["role"])
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise web.HTTPNotFound(
            text=f'{{"error": "no role {request.match_info["role"]!r}: expected {allowed}"}}',
            content_type="application/json",
        ) from None


def _by(request: web.Request) -> str:
    token = request.get("token")  # set by the network API's check; the unix socket is the CLI
    return f"token {token.id} from {request.remote}" if isinstance(token, Token) else "lifeline admin password"


def add_password_routes(app: web.Application, store: Store) -> None:
    """PUT/DELETE /api/v1/passwords/{role}: the status page's passwords (admin scope over the network)."""

    async def put_password(request: web.Request) -> web.Response:
        role = _role(request)
        try:
            password = await asyncio.to_thread(set_password, store, _by(request), role)
        except StoreError as err:
            return web.json_response({"error": str(err)}, status=500)
        return web.json_response({"role": role.value, "password": password})

    async def delete_password(request: web.Request) -> web.Response:
        role = _role(request)
        if role is not Role.VIEWER:
            return web.json_response({"error": "the admin password can only be replaced, not removed"}, status=400)
        try:
            await asyncio.to_thread(remove_viewer_password, store, _by(request))
        except StoreError as err:
            return web.json_response({"error": str(err)}, status=500)
        return web.json_response({"role": role.value, "removed": True})

    add_routes(app, PASSWORD_ROUTES, {"setPassword": put_password, "removePassword": delete_password})
