"""The status page in process: login, sessions, CSRF, the actions, and what it shows (gateway/web/ui/).

The daemon's API application as the daemon builds it (the network's bearer-token middleware included),
with the status page on it; the status document is the one captured from a real daemon, the store is
real, the mode, drill and mirror are fakes that record what they are asked.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.cdr.labsink import seed_records
from gateway.cli import admin_cmd
from gateway.config import parse
from gateway.core.mode import Override
from gateway.drill.model import DrillResult
from gateway.drill.service import DrillBusyError
from gateway.hw.admin import STATE_KEY, verify_password
from gateway.store import Store
from gateway.web.api import build_api
from gateway.web.network import NetworkApi
from gateway.web.tokens import TokenStore
from gateway.web.ui.history import ProbeHistory, Sample
from gateway.web.ui.page import COOKIE, StatusPage
from gateway.web.ui.sessions import SessionStore
from gateway.web.ui.view import chart, page_model, timeline

CAPTURED = Path(__file__).resolve().parent.parent / "data" / "daemon_status.json"
IDLE_S = 600.0
FAILURES = 3


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Box:
    """The fakes behind the page: the mode, the drill, the mirror."""

    status: dict[str, Any]
    overrides: list[tuple[Override, str]] = field(default_factory=list)
    drills: list[bool] = field(default_factory=list)
    syncs: list[str] = field(default_factory=list)
    drill_busy: bool = False

    async def get_status(self) -> dict[str, Any]:
        return dict(json.loads(json.dumps(self.status)))

    async def set_override(self, override: Override, reason: str) -> None:
        self.overrides.append((override, reason))
        mode = self.status["mode"]
        mode["override"] = override.value
        mode["mode"] = mode["detected"] if override is Override.AUTO else override.value

    # the drill
    def begin(self, *, emergency_test: bool = False, force: bool = False) -> DrillResult:
        if self.drill_busy:
            raise DrillBusyError("drill x is running (snapshot): one at a time")
        self.drills.append(force)
        return DrillResult(id="20260101-120000", started=time.time(), forced=force, emergency_test=False)

    async def report(self, report_id: str, fmt: str) -> str | None:
        return "<html><body>report</body></html>" if report_id == "20260101-120000" else None

    # the mirror
    def start_sync(self, *, full: bool, allow_empty: bool, reason: str) -> bool:
        self.syncs.append(reason)
        return True


class DrillFake:
    def __init__(self, box: Box) -> None:
        self.box = box

    def begin(self, *, emergency_test: bool = False, force: bool = False) -> DrillResult:
        return self.box.begin(emergency_test=emergency_test, force=force)

    def status(self) -> dict[str, Any]:
        return {}

    async def report(self, report_id: str, fmt: str) -> str | None:
        return await self.box.report(report_id, fmt)


class MirrorFake:
    def __init__(self, box: Box) -> None:
        self.box = box

    def start_sync(self, *, full: bool, allow_empty: bool, reason: str) -> bool:
        return self.box.start_sync(full=full, allow_empty=allow_empty, reason=reason)

    def trigger(self, reason: str) -> None:
        pass

    async def status(self) -> dict[str, Any]:
        return {}


@dataclass
class Rig:
    client: TestClient[web.Request, web.Application]
    box: Box
    store: Store
    clock: Clock
    page: StatusPage
    password: str


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "lifeline.db")
    yield store
    store.close()


def make_app(box: Box, store: Store, clock: Clock) -> tuple[web.Application, StatusPage]:
    """The daemon's API application with the network's middleware and the status page, as App.start builds it."""
    app = build_api(box.get_status, box.set_override)
    network = NetworkApi(parse({"api": {"enabled": False, "auth_failures": FAILURES}}), TokenStore(store), clock)
    network.install(app)
    page = StatusPage(
        status=box.get_status,
        set_override=box.set_override,
        drill=DrillFake(box),
        mirror=MirrorFake(box),
        store=store,
        limiter=network.limiter,
        health=lambda: box.status["health"],
        idle_s=IDLE_S,
        clock=clock,
    )
    page.install(app)
    return app, page


@pytest.fixture
async def rig(store: Store) -> AsyncIterator[Rig]:
    password = admin_cmd.set_password(store, "test")
    box = Box(json.loads(CAPTURED.read_text()))
    clock = Clock()
    app, page = make_app(box, store, clock)
    async with await client_for(app) as client:
        yield Rig(client, box, store, clock, page, password)


async def client_for(app: web.Application) -> TestClient[web.Request, web.Application]:
    server = TestServer(app)
    await server.start_server()
    # The cookies are Secure: this jar sends them to the plain-HTTP test server as it would over HTTPS.
    jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=str(server.make_url("/")))
    return TestClient(server, cookie_jar=jar)


def hidden(html: str, name: str = "csrf") -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert found, html[:2000]
    return found[1]


async def login(rig: Rig, password: str | None = None) -> aiohttp.ClientResponse:
    form = await rig.client.get("/ui/login")
    token = hidden(await form.text())
    return await rig.client.post(
        "/ui/login", data={"csrf": token, "password": password or rig.password}, allow_redirects=False
    )


def session_cookie(rig: Rig) -> str | None:
    for cookie in rig.client.session.cookie_jar:
        if cookie.key == COOKIE and cookie.value:
            return cookie.value
    return None


async def page_csrf(rig: Rig) -> str:
    response = await rig.client.get("/ui/")
    assert response.status == 200
    return hidden(await response.text())


async def test_without_a_login_every_page_leads_to_the_login_and_the_api_still_wants_its_token(rig: Rig) -> None:
    for path in ("/", "/ui", "/ui/", "/ui/drill/20260101-120000.html"):
        response = await rig.client.get(path, allow_redirects=False)
        assert response.status == 302, path
        assert response.headers["Location"] in ("/ui/", "/ui/login"), path
    followed = await rig.client.get("/")
    assert followed.status == 200 and str(followed.url).endswith("/ui/login")
    assert 'type="password"' in await followed.text()
    response = await rig.client.get("/ui/status.json")
    assert response.status == 401 and (await response.json())["login"].startswith("/ui/login")
    response = await rig.client.post("/ui/mode", data={"mode": "survival"}, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/ui/login"
    assert rig.box.overrides == []
    # The API is unchanged: no bearer token, no status; /metrics likewise.
    response = await rig.client.get("/api/v1/status")
    assert response.status == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await rig.client.get("/ui/nothing-here")).status == 404
    assert (await rig.client.get("/ui/static/ui.css")).status == 200


async def test_a_wrong_password_makes_no_session_and_repeated_ones_block_the_address(rig: Rig) -> None:
    response = await login(rig, "wrong-password")
    assert response.status == 401 and "Wrong password" in await response.text()
    assert session_cookie(rig) is None
    assert (await rig.client.get("/ui/", allow_redirects=False)).status == 302
    for _ in range(FAILURES - 1):
        assert (await login(rig, "still-wrong")).status == 401
    # Blocked now: even the right password is refused until the block is over.
    response = await login(rig)
    assert response.status == 429 and int(response.headers["Retry-After"]) > 0
    assert "Too many failed logins" in await response.text() and session_cookie(rig) is None
    assert any("blocked" in e["message"] for e in rig.store.recent_events(5))
    rig.clock.now += 61  # the API's first block (60 s) is over
    response = await login(rig)
    assert response.status == 303 and session_cookie(rig) is not None


async def test_the_right_password_shows_the_page_with_the_mode_and_a_strict_cookie(rig: Rig) -> None:
    response = await login(rig)
    assert response.status == 303 and response.headers["Location"] == "/ui/"
    cookie = response.headers.getall("Set-Cookie")
    session = next(c for c in cookie if c.startswith(f"{COOKIE}="))
    for attribute in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/"):
        assert attribute in session, session
    page = await rig.client.get("/ui/")
    html = await page.text()
    assert page.status == 200
    assert re.search(r'id="mode-badge" class="badge mode-normal" data-field="mode">NORMAL<', html)
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"
    for figure in ("Lab Mobile (LTE)", "VoLTE", "SIM …7890", "webhook", "3.2 ms", "set by hand to auto"):
        assert figure in html, figure
    live = await (await rig.client.get("/ui/status.json")).json()
    assert live["mode"] == "normal" and live["fields"]["mode"] == "NORMAL" and live["fields"]["phones"] == "3"
    # Logged in: the login form sends straight to the page.
    response = await rig.client.get("/ui/login", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == "/ui/"


async def test_the_login_form_needs_its_own_csrf_token(rig: Rig) -> None:
    await rig.client.get("/ui/login")
    response = await rig.client.post("/ui/login", data={"password": rig.password}, allow_redirects=False)
    assert response.status == 403 and session_cookie(rig) is None
    response = await rig.client.post("/ui/login", data={"password": rig.password, "csrf": "forged"})
    assert response.status == 403 and session_cookie(rig) is None


async def test_a_post_without_the_csrf_token_is_refused(rig: Rig) -> None:
    assert (await login(rig)).status == 303
    csrf = await page_csrf(rig)
    for data in ({"mode": "survival"}, {"mode": "survival", "csrf": "not-the-token"}):
        response = await rig.client.post("/ui/mode", data=data, allow_redirects=False)
        assert response.status == 403
    for path in ("/ui/drill", "/ui/mirror/sync", "/ui/cdr.csv", "/ui/logout"):
        assert (await rig.client.post(path, data={}, allow_redirects=False)).status == 403, path
    # The right token from another site's page is refused too (Origin), on top of SameSite=Strict.
    evil = {"Origin": "https://evil.example"}
    response = await rig.client.post("/ui/mode", data={"mode": "survival", "csrf": csrf}, headers=evil)
    assert response.status == 403
    assert rig.box.overrides == [] and rig.box.drills == [] and rig.box.syncs == []
    # With it: done, and the page says so.
    response = await rig.client.post("/ui/mode", data={"mode": "survival", "csrf": csrf})
    assert response.status == 200 and str(response.url).endswith("/ui/")
    html = await response.text()
    assert "Forced SURVIVAL." in html and 'data-field="mode">SURVIVAL<' in html
    assert rig.box.overrides[0][0] is Override.SURVIVAL and "status page" in rig.box.overrides[0][1]
    # The token also works as a header (the page's script).
    response = await rig.client.post("/ui/mode", data={"mode": "auto"}, headers={"X-CSRF-Token": csrf})
    assert response.status == 200 and rig.box.overrides[-1][0] is Override.AUTO


async def test_the_actions_start_a_drill_sync_the_mirror_and_download_the_call_records(rig: Rig) -> None:
    seed_records(rig.store, 3, sinks=[])
    assert (await login(rig)).status == 303
    csrf = await page_csrf(rig)
    html = await (await rig.client.post("/ui/drill", data={"csrf": csrf, "force": "on"})).text()
    assert rig.box.drills == [True] and "Drill 20260101-120000 started" in html
    rig.box.drill_busy = True
    html = await (await rig.client.post("/ui/drill", data={"csrf": csrf})).text()
    assert "Drill not started: drill x is running" in html and rig.box.drills == [True]
    html = await (await rig.client.post("/ui/mirror/sync", data={"csrf": csrf})).text()
    assert "Directory sync started." in html and rig.box.syncs[0].startswith("status page")
    response = await rig.client.post("/ui/cdr.csv", data={"csrf": csrf})
    assert response.status == 200 and response.content_type == "text/csv"
    assert re.fullmatch(
        r'attachment; filename="lifeline-cdr-\d{8}-\d{6}\.csv"', response.headers["Content-Disposition"]
    )
    rows = (await response.text()).splitlines()
    assert len(rows) == 3 and all('"1001","1002"' in row and '"ANSWERED"' in row for row in rows)
    report = await rig.client.get("/ui/drill/20260101-120000.html")
    assert report.status == 200 and "report" in await report.text()
    assert (await rig.client.get("/ui/drill/nope.html")).status == 404


async def test_logout_ends_the_session(rig: Rig) -> None:
    assert (await login(rig)).status == 303
    old = session_cookie(rig)
    csrf = await page_csrf(rig)
    response = await rig.client.post("/ui/logout", data={"csrf": csrf}, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/ui/login"
    assert session_cookie(rig) is None
    assert len(rig.page.sessions) == 0
    # The old cookie is worth nothing now.
    response = await rig.client.get("/ui/", headers={"Cookie": f"{COOKIE}={old}"}, allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == "/ui/login"


async def test_a_session_ends_when_idle_and_the_page_polling_does_not_keep_it_alive(rig: Rig) -> None:
    assert (await login(rig)).status == 303
    assert (await rig.client.get("/ui/", allow_redirects=False)).status == 200
    rig.clock.now += IDLE_S - 10
    assert (await rig.client.get("/ui/status.json")).status == 200  # a poll: not use
    rig.clock.now += 11
    response = await rig.client.get("/ui/status.json")
    assert response.status == 401
    assert (await rig.client.get("/ui/", allow_redirects=False)).headers["Location"] == "/ui/login"
    expired = await rig.client.get("/ui/login?expired")
    assert "Your session has ended" in await expired.text()


async def test_with_no_admin_password_the_login_page_says_how_to_set_one(store: Store) -> None:
    app, _ = make_app(Box(json.loads(CAPTURED.read_text())), store, Clock())
    async with await client_for(app) as client:
        response = await client.get("/ui/login")
        html = await response.text()
        assert 'id="no-password"' in html and "lifeline admin password" in html
        assert 'type="password"' not in html
        token = response.cookies["lifeline_login"].value  # the form's token, were there a form
        response = await client.post("/ui/login", data={"csrf": token, "password": "anything"})
        assert response.status == 409 and COOKIE not in response.cookies


def test_lifeline_admin_password_stores_only_a_hash_of_what_it_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.cli.main import main

    config = tmp_path / "lifeline.toml"
    config.write_text(f'[paths]\ndata_dir = "{tmp_path / "data"}"\nrun_dir = "{tmp_path / "run"}"\n')
    try:
        assert main(["--config", str(config), "admin", "password"]) == 0
    finally:
        structlog.reset_defaults()  # main() pointed structlog at capsys's stderr
    password = capsys.readouterr().out.splitlines()[1]
    assert re.fullmatch(r"[a-z2-9]{4}(-[a-z2-9]{4}){3}", password)
    store = Store(tmp_path / "data" / "lifeline.db")
    try:
        stored = store.get_state(STATE_KEY)
        assert password not in json.dumps(stored) and verify_password(password, stored["hash"])
        assert store.recent_events(1)[0]["kind"] == "admin"
    finally:
        store.close()


# ---------------------------------------------------------------------- what the page shows


def test_the_chart_draws_the_worst_rtt_per_bucket_breaks_at_misses_and_marks_them() -> None:
    now = 10_000.0
    samples = [Sample(now - 3000 + i * 5, True, 20.0 + i % 3, 0.0) for i in range(100)]
    samples.append(Sample(now - 100, False, None, 0.5))
    samples.append(Sample(now - 10, True, 40.0, 0.25))
    drawn = chart(samples, now)
    assert drawn["scale"] == "50 ms" and drawn["samples"] == 102
    assert drawn["rtt"].count("M") == 2  # one line, then one after the miss's gap
    assert drawn["miss"].count("M") == 1 and drawn["loss"].startswith("M")
    assert chart([], now) == {"rtt": "", "loss": "", "miss": "", "scale": "10 ms", "samples": 0}


def test_the_timeline_splits_the_day_at_each_mode_change() -> None:
    now = 100_000.0

    def change(ago: float, old: str, new: str) -> dict[str, Any]:
        return {"ts": now - ago, "kind": "mode", "message": f"{old} → {new}", "data": {"old": old, "new": new}}

    events = [
        change(7200, "normal", "survival"),
        {"ts": now - 7100, "kind": "override", "message": "override auto → survival", "data": {}},
        change(3600, "survival", "normal"),
    ]
    drawn = timeline(events, "normal", now)
    assert [s["mode"] for s in drawn["segments"]] == ["normal", "survival", "normal"]
    assert sum(s["w"] for s in drawn["segments"]) == pytest.approx(1000, abs=1)
    assert drawn["changes"][0]["message"] == "survival → normal" and len(drawn["changes"]) == 3
    assert timeline([], "survival", now)["segments"] == [{"x": 0.0, "w": 1000.0, "mode": "survival"}]


def test_the_page_model_follows_the_status_document() -> None:
    status = json.loads(CAPTURED.read_text())
    model = page_model(status, [], [], time.time())
    fields = model["fields"]
    assert [fields[k] for k in ("mode", "phones", "sip_rtt", "mirror_source")] == ["NORMAL", "3", "3.2 ms", "file"]
    assert fields["cdr_backlog"] == "1" and model["sinks"][0]["state"] == "backoff"
    assert model["modems"][0]["bars"] == 4 and model["modems"][0]["voice"] == "VoLTE"
    assert fields["failed_logins"] == "1003: 3"
    status["mode"].update(mode="survival", override="survival")
    status["trunk"] = None
    last = {"id": "d1", "passed": False, "failed": ["call"], "started": 1.0, "reports": {"html": "/x/d1.html"}}
    status["drill"] = {"state": "idle", "running": False, "last": last}
    model = page_model(status, [], [], time.time())
    assert model["fields"]["mode"] == "SURVIVAL" and model["serves_locally"] and model["modems"] == []
    assert model["fields"]["override"] == "manual override: survival"
    assert model["drill"]["report"] == "d1.html" and model["fields"]["drill"].endswith("FAIL: call")


def test_the_probe_history_keeps_one_sample_per_result_for_an_hour() -> None:
    history = ProbeHistory(span_s=60, interval_s=5)
    probe = {"kind": "sip", "ok": True, "rtt_ms": 3.0, "loss": 0.0, "at": 1000.0}
    assert history.add(probe) and not history.add(probe)  # the same result is taken once
    assert history.add({**probe, "ok": False, "at": 1001.0})
    assert [s.rtt_ms for s in history.samples(1001.0)] == [3.0, None]
    assert history.samples(1100.0) == []  # older than the span
    assert not history.add(None) and not history.add({**probe, "at": None})


def test_sessions_expire_when_idle_or_old_and_the_least_used_go_first() -> None:
    clock = Clock()
    sessions = SessionStore(idle_s=100, lifetime_s=1000, limit=2, clock=clock)
    first, _ = sessions.create("192.0.2.1")
    second, _ = sessions.create("192.0.2.2")
    assert sessions.get(first) is not None  # used: second is now the least recently used
    sessions.create("192.0.2.3")
    assert sessions.get(second) is None and sessions.get(first) is not None and len(sessions) == 2
    for _ in range(11):  # used every 90 s: never idle for 100 s
        clock.now += 90
        assert sessions.get(first) is not None
    clock.now += 90
    assert sessions.get(first) is None  # 1080 s old: past its lifetime although used all along
    idle, _ = sessions.create("192.0.2.4")
    clock.now += 100
    assert sessions.get(idle) is None
    assert sessions.get("made-up") is None and sessions.get(None) is None
