"""The status page's routes: login and logout, the page, its JSON for live updates, the actions.

    GET  /              → /ui/
    GET  /ui/login      the login form (or how to set an admin password, when none is set)
    POST /ui/login      the admin's or the viewer's password → a session cookie; failures count towards the API's block
    POST /ui/logout
    GET  /ui/           the page (GET /ui/status.json: the same, for the page's script every 2 s)
    POST /ui/mode       force SURVIVAL or NORMAL, or back to automatic
    POST /ui/drill      start a drill;  POST /ui/mirror/sync: sync the directory now
    POST /ui/cdr.csv    the call records as CSV (Master.csv columns), as a download
    GET  /ui/drill/{name}  a drill's report;  GET /ui/static/…: the CSS and the script

A viewer (office IT: `lifeline admin password --viewer`) sees everything and may download the call
records, which office IT audits anyway; the mode, drill and sync buttons are not shown to it and its
POSTs to them are refused (403), CSRF token or not.

None of these takes a bearer token (gateway.web.network lets /ui through): the session cookie is the
credential — `Secure`, `HttpOnly`, `SameSite=Strict` — and every POST must also carry the session's
CSRF token (a hidden field, or the X-CSRF-Token header), and an Origin, if sent, of this site. The login
form, before any session exists, carries a token that must match a cookie of its own (double submit).
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
import structlog
from aiohttp import web
from multidict import MultiDictProxy

from gateway.cdr.csvfile import export_final
from gateway.core.mode import Override
from gateway.drill.routes import CONTENT_TYPES, REPORT_NAME, DrillControl
from gateway.drill.runner import DrillError
from gateway.drill.service import DrillBusyError, DrillRefusedError
from gateway.hw.admin import verify_password
from gateway.store import Store, events_since
from gateway.web.api import MirrorControl, OverrideSetter, StatusProvider, json_document
from gateway.web.network import FAILED, FailureLimiter, is_page_path
from gateway.web.ui.history import ProbeHistory
from gateway.web.ui.passwords import add_password_routes
from gateway.web.ui.sessions import IDLE_S, PASSWORD_KEYS, Role, Session, SessionStore
from gateway.web.ui.view import TIMELINE_S, page_model

log = structlog.get_logger("ui")

HERE = Path(__file__).resolve().parent
PREFIX = "/ui"
COOKIE = "lifeline_session"
LOGIN_COOKIE = "lifeline_login"  # the login form's CSRF token (double submit): no session exists yet
LOGIN_PATH = f"{PREFIX}/login"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
MAX_PASSWORD = 256
MODE_EVENTS = 500  # the newest mode changes the timeline reads (a flapping box has many)
HEADERS = {
    # Everything is served from here: the box may be offline, and nothing else may run in the page.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # not no-referrer: with it a browser sends `Origin: null` on a POST
}
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"

Form = MultiDictProxy[str | bytes | bytearray | web.FileField]
Action = Callable[[web.Request, Session, Form], Awaitable[web.StreamResponse]]


def _cookie(response: web.StreamResponse, name: str, value: str, path: str) -> None:
    response.set_cookie(name, value, path=path, secure=True, httponly=True, samesite="Strict")


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


class StatusPage:
    """The status page on the daemon's API application (before it is frozen), and its probe history."""

    def __init__(
        self,
        *,
        status: StatusProvider,
        set_override: OverrideSetter,
        drill: DrillControl,
        mirror: MirrorControl,
        store: Store,
        limiter: FailureLimiter,
        health: Callable[[], dict[str, Any]],
        idle_s: float = IDLE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.status, self.set_override, self.drill, self.mirror = status, set_override, drill, mirror
        self.store, self.limiter, self.health = store, limiter, health
        self.sessions = SessionStore(idle_s=idle_s, clock=clock)
        self.history = ProbeHistory()
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ wiring

    def install(self, app: web.Application) -> None:
        """Add the routes, the templates and the response headers to app."""
        aiohttp_jinja2.setup(
            app,
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,  # status texts come from outside (SIP reasons, directory names): escaped, always
            undefined=jinja2.StrictUndefined,
            default_helpers=False,
        )
        router = app.router
        router.add_get("/", self._to_page, name="ui.root")
        router.add_get(PREFIX, self._to_page, name="ui.bare")
        router.add_get(f"{PREFIX}/", self._page, name="ui.page")
        router.add_get(LOGIN_PATH, self._login_form, name="ui.login_form")
        router.add_post(LOGIN_PATH, self._login, name="ui.login")
        router.add_get(f"{PREFIX}/status.json", self._status_json, name="ui.status")
        router.add_get(f"{PREFIX}/drill/{{name}}", self._drill_report, name="ui.drill_report")
        for path, action, name, admin in (
            ("logout", self._logout, "ui.logout", False),
            ("mode", self._mode, "ui.mode", True),
            ("drill", self._start_drill, "ui.drill", True),
            ("mirror/sync", self._sync, "ui.sync", True),
            ("cdr.csv", self._cdr_csv, "ui.cdr", False),  # a viewer may: office IT audits the calls
        ):
            router.add_post(f"{PREFIX}/{path}", self._action(action, admin=admin), name=name)
        router.add_static(f"{PREFIX}/static", HERE / "static", name="ui.static")
        add_password_routes(app, self.store)
        app.on_response_prepare.append(self._headers)

    async def start(self) -> None:
        """Start sampling the SIP probe for the chart."""
        self._task = asyncio.create_task(self.history.run(self.health), name="ui-probe-history")

    async def stop(self) -> None:
        """Stop sampling."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _headers(self, request: web.Request, response: web.StreamResponse) -> None:
        if not is_page_path(request.path):
            return
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        if not request.path.startswith(f"{PREFIX}/static/"):
            response.headers.setdefault("Cache-Control", "no-store")

    # ------------------------------------------------------------------ sessions and login

    async def _session(self, request: web.Request, *, touch: bool = True) -> Session | None:
        cookie = request.cookies.get(COOKIE)
        session = self.sessions.get(cookie, touch=touch)
        if session is None:
            return None
        # Whoever changed or removed the role's password (the API, the CLI with no daemon, the reset
        # button), the sessions it opened end now, not when idle: a removed viewer is out at once.
        stored = await asyncio.to_thread(self._password_hash, session.role)
        if stored is None or not secrets.compare_digest(stored, session.password_hash):
            self.sessions.drop(cookie)
            return None
        return session

    def _password_hash(self, role: Role = Role.ADMIN) -> str | None:
        stored = self.store.get_state(PASSWORD_KEYS[role])
        return str(stored["hash"]) if isinstance(stored, dict) and stored.get("hash") else None

    def _role_of(self, password: str) -> tuple[Role, str] | None:
        """Whose password this is, and its hash (worker thread: scrypt); every set hash is tried: no timing tell."""
        matched = None
        for role in Role:
            stored = self._password_hash(role)
            if stored is not None and verify_password(password, stored) and matched is None:
                matched = role, stored
        return matched

    async def _to_page(self, _request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"{PREFIX}/")

    async def _login_page(
        self, request: web.Request, message: str | None = None, status: int = 200, headers: dict[str, str] | None = None
    ) -> web.Response:
        configured = await asyncio.to_thread(self._password_hash) is not None
        token = secrets.token_urlsafe(32)
        context = {
            "csrf": token,
            "message": message,
            "configured": configured,
            "expired": "expired" in request.query and message is None,
        }
        response = aiohttp_jinja2.render_template("login.html.tmpl", request, context, status=status)
        response.headers.update(headers or {})
        _cookie(response, LOGIN_COOKIE, token, LOGIN_PATH)
        return response

    async def _login_form(self, request: web.Request) -> web.StreamResponse:
        if await self._session(request, touch=False) is not None:
            raise web.HTTPFound(f"{PREFIX}/")
        return await self._login_page(request)

    async def _login(self, request: web.Request) -> web.StreamResponse:
        address = request.remote or "unknown"
        wait = self.limiter.blocked(address)
        if wait:
            message = f"Too many failed logins from {address}: try again in {math.ceil(wait)} s."
            return await self._login_page(request, message, 429, {"Retry-After": str(math.ceil(wait))})
        form = await request.post()
        presented, expected = form.get(CSRF_FIELD), request.cookies.get(LOGIN_COOKIE)
        if not isinstance(presented, str) or not expected or not secrets.compare_digest(presented, expected):
            return await self._login_page(request, "The login form had expired: please try again.", 403)
        stored = await asyncio.to_thread(self._password_hash)
        if stored is None:
            return await self._login_page(request, "No admin password is set yet (see below).", 409)
        password = form.get("password")
        matched = None
        if isinstance(password, str) and 0 < len(password) <= MAX_PASSWORD:
            matched = await asyncio.to_thread(self._role_of, password.strip())
        if matched is None:
            return await self._failed(request, address)
        role, password_hash = matched
        session_id, _session = self.sessions.create(address, role, password_hash)
        log.info("status page login", source=address, role=role.value)
        await asyncio.to_thread(self.store.add_event, "ui", f"status page: {role.value} logged in from {address}")
        response = _see_other(f"{PREFIX}/")
        _cookie(response, COOKIE, session_id, "/")
        response.del_cookie(LOGIN_COOKIE, path=LOGIN_PATH)
        return response

    async def _failed(self, request: web.Request, address: str) -> web.Response:
        # The network API's line and limiter: one fail2ban filter and one block for both ways in.
        log.warning(f"{FAILED} {address}: status page login, wrong password", source=address, path=LOGIN_PATH)
        block = self.limiter.fail(address)
        if block:
            message = f"status page: {address} blocked for {block:g} s after {self.limiter.failures} failed logins"
            log.warning(message, source=address)
            await asyncio.to_thread(self.store.add_event, "api", message, {"address": address, "block_s": block})
        return await self._login_page(request, "Wrong password.", 401)

    # ------------------------------------------------------------------ the page

    async def _model(self) -> dict[str, Any]:
        status = await self.status()
        now = time.time()
        events = await asyncio.to_thread(self._mode_events, now - TIMELINE_S)
        return page_model(status, self.history.samples(now), events, now)

    def _mode_events(self, since: float) -> list[dict[str, Any]]:
        with self.store.read() as conn:
            return events_since(conn, ("mode", "override"), since, newest=MODE_EVENTS)

    async def _page(self, request: web.Request) -> web.StreamResponse:
        session = await self._session(request)
        if session is None:
            raise web.HTTPFound(LOGIN_PATH)
        flash, session.flash = session.flash, []
        context = {"m": await self._model(), "csrf": session.csrf, "flash": flash, "admin": session.role is Role.ADMIN}
        return aiohttp_jinja2.render_template("status.html.tmpl", request, context)

    async def _status_json(self, request: web.Request) -> web.StreamResponse:
        # The page's poll does not count as use: a tab left open still logs out after the idle time.
        if await self._session(request, touch=False) is None:
            return web.json_response({"error": "not logged in", "login": f"{LOGIN_PATH}?expired"}, status=401)
        return json_document(await self._model())

    async def _drill_report(self, request: web.Request) -> web.StreamResponse:
        if await self._session(request) is None:
            raise web.HTTPFound(LOGIN_PATH)
        match = REPORT_NAME.match(request.match_info["name"])
        text = await self.drill.report(match["id"], match["fmt"]) if match else None
        if match is None or text is None:
            raise web.HTTPNotFound(text="no such drill report")
        response = web.Response(text=text, content_type=CONTENT_TYPES[match["fmt"]], charset="utf-8")
        response.headers["Content-Security-Policy"] = REPORT_CSP  # the report's own inline stylesheet
        return response

    # ------------------------------------------------------------------ actions (POST, CSRF)

    def _action(self, action: Action, *, admin: bool) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def checked(request: web.Request) -> web.StreamResponse:
            session = await self._session(request)
            if session is None:
                return _see_other(LOGIN_PATH)
            origin = request.headers.get("Origin")
            form = await request.post()
            presented = form.get(CSRF_FIELD)
            token = presented if isinstance(presented, str) else request.headers.get(CSRF_HEADER)
            if not session.csrf_ok(token) or (origin is not None and origin != f"{request.scheme}://{request.host}"):
                log.warning("status page: POST refused (CSRF)", source=request.remote, path=request.path)
                raise web.HTTPForbidden(text="CSRF check failed: reload the page and try again")
            if admin and session.role is not Role.ADMIN:
                log.warning("status page: action refused (read-only login)", source=request.remote, path=request.path)
                raise web.HTTPForbidden(text="read-only login: this needs the admin password")
            return await action(request, session, form)

        return checked

    async def _logout(self, request: web.Request, session: Session, _form: Any) -> web.StreamResponse:
        self.sessions.drop(request.cookies.get(COOKIE))
        log.info("status page logout", source=request.remote)
        response = _see_other(LOGIN_PATH)
        response.del_cookie(COOKIE, path="/")
        return response

    async def _mode(self, request: web.Request, session: Session, form: Any) -> web.StreamResponse:
        try:
            override = Override(str(form.get("mode")))
        except ValueError:
            raise web.HTTPBadRequest(text="mode: expected auto, normal or survival") from None
        await self.set_override(override, f"set on the status page from {request.remote}")
        session.flash.append(
            "Back to automatic detection." if override is Override.AUTO else f"Forced {override.value.upper()}."
        )
        return _see_other(f"{PREFIX}/")

    async def _start_drill(self, request: web.Request, session: Session, form: Any) -> web.StreamResponse:
        try:
            result = self.drill.begin(force=form.get("force") == "on")
        except (DrillBusyError, DrillRefusedError, DrillError) as err:
            session.flash.append(f"Drill not started: {err}")
        else:
            session.flash.append(f"Drill {result.id} started; the drill line follows it.")
            log.info("drill started on the status page", drill=result.id, source=request.remote)
        return _see_other(f"{PREFIX}/")

    async def _sync(self, request: web.Request, session: Session, _form: Any) -> web.StreamResponse:
        if self.mirror.start_sync(full=False, allow_empty=False, reason=f"status page ({request.remote})"):
            session.flash.append("Directory sync started.")
        else:
            session.flash.append("No sync started: one is running already, or no directory source is configured.")
        return _see_other(f"{PREFIX}/")

    async def _cdr_csv(self, request: web.Request, session: Session, _form: Any) -> web.StreamResponse:
        count, text = await asyncio.to_thread(export_final, self.store)
        log.info("call records exported on the status page", records=count, source=request.remote)
        name = time.strftime("lifeline-cdr-%Y%m%d-%H%M%S.csv")
        headers = {"Content-Disposition": f'attachment; filename="{name}"', "X-Records": str(count)}
        return web.Response(text=text, content_type="text/csv", charset="utf-8", headers=headers)
