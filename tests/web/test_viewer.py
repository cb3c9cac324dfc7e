"""The read-only login of the status page: `lifeline admin password --viewer`, a page without action buttons,
and every action refused (403) even with the session's valid CSRF token; the call records still download.

The same in-process rig as tests/web/test_status_page.py (the daemon's API application with the network
middleware, a real store); the password is made by the real CLI in a subprocess.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gateway.cdr.labsink import seed_records
from gateway.cli import admin_cmd
from gateway.hw.admin import STATE_KEY, verify_password
from gateway.lab.daemon import LifelineProcess
from gateway.store import Store
from gateway.web.ui.sessions import PASSWORD_KEYS, Role
from tests.web.test_status_page import CAPTURED, Box, Clock, Rig, client_for, hidden, make_app, session_cookie

ACTIONS = {"mode": {"mode": "survival"}, "drill": {"force": "on"}, "mirror/sync": {}}
BUTTONS = ('id="force-survival"', 'id="force-normal"', 'id="force-auto"', 'id="sync"', 'id="run-drill"')


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    # The viewer's password made by the CLI, as an installer would, in the store the page reads.
    daemon = LifelineProcess(tmp_path / "box", {})
    admin = daemon.cli("admin", "password").stdout.splitlines()[1]
    done = daemon.cli("admin", "password", "--viewer")
    assert "read-only" in done.stdout.splitlines()[0]
    viewer = done.stdout.splitlines()[1]
    store = Store(daemon.workdir / "data" / "lifeline.db")
    box = Box(json.loads(CAPTURED.read_text()))
    clock = Clock()
    app, page = make_app(box, store, clock)
    try:
        async with await client_for(app) as client:
            yield Rig(client, box, store, clock, page, viewer)
    finally:
        store.close()
    assert admin != viewer


async def login(rig: Rig, password: str) -> aiohttp.ClientResponse:
    form = await rig.client.get("/ui/login")
    token = hidden(await form.text())
    return await rig.client.post("/ui/login", data={"csrf": token, "password": password}, allow_redirects=False)


async def test_the_cli_keeps_only_a_hash_of_the_viewer_password_beside_the_admins(rig: Rig) -> None:
    stored = rig.store.get_state(PASSWORD_KEYS[Role.VIEWER])
    assert verify_password(rig.password, stored["hash"])
    assert not verify_password(rig.password, rig.store.get_state(STATE_KEY)["hash"])  # the admin's is another
    with sqlite3.connect(rig.store.path) as db:
        dump = "\n".join(db.iterdump())
    assert rig.password not in dump
    assert any("viewer password set" in e["message"] for e in rig.store.recent_events(5))


async def test_a_viewer_sees_everything_but_no_action_button(rig: Rig) -> None:
    response = await login(rig, rig.password)
    assert response.status == 303 and session_cookie(rig) is not None
    html = await (await rig.client.get("/ui/")).text()
    assert 'id="read-only"' in html
    for button in BUTTONS:
        assert button not in html, button
    assert 'id="download-cdr"' in html and 'id="logout"' in html  # office IT may audit the calls
    for figure in ("Lab Mobile (LTE)", "VoLTE", "webhook"):  # the same figures as the admin's page
        assert figure in html, figure
    live = await (await rig.client.get("/ui/status.json")).json()
    assert live["fields"]["mode"] == "NORMAL"
    assert any("viewer logged in" in e["message"] for e in rig.store.recent_events(5))


async def test_a_viewers_actions_are_refused_even_with_a_valid_csrf_token(rig: Rig) -> None:
    await login(rig, rig.password)
    csrf = hidden(await (await rig.client.get("/ui/")).text())
    for path, form in ACTIONS.items():
        response = await rig.client.post(f"/ui/{path}", data={"csrf": csrf, **form}, allow_redirects=False)
        assert response.status == 403, path
        assert "read-only" in await response.text()
        header = await rig.client.post(f"/ui/{path}", headers={"X-CSRF-Token": csrf}, allow_redirects=False)
        assert header.status == 403, path
    assert (rig.box.overrides, rig.box.drills, rig.box.syncs) == ([], [], [])
    # What a viewer may do: download the call records, log out.
    seed_records(rig.store, 3, [])
    csv = await rig.client.post("/ui/cdr.csv", data={"csrf": csrf}, allow_redirects=False)
    assert csv.status == 200 and csv.headers["X-Records"] == "3"
    out = await rig.client.post("/ui/logout", data={"csrf": csrf}, allow_redirects=False)
    assert out.status == 303 and (await rig.client.get("/ui/", allow_redirects=False)).status == 302


async def test_the_admin_still_acts_and_a_removed_viewer_password_no_longer_logs_in(rig: Rig) -> None:
    admin = admin_cmd.set_password(rig.store, "test")
    await login(rig, admin)
    html = await (await rig.client.get("/ui/")).text()
    assert all(button in html for button in BUTTONS) and 'id="read-only"' not in html
    response = await rig.client.post("/ui/mode", data={"csrf": hidden(html), "mode": "survival"})
    assert response.status == 200 and [o.value for o, _ in rig.box.overrides] == ["survival"]
    rig.store.set_state(PASSWORD_KEYS[Role.VIEWER], None)  # what `--viewer --remove` writes
    rig.client.session.cookie_jar.clear()
    assert (await login(rig, rig.password)).status == 401
