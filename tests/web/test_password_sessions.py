"""A changed or removed status page password ends the sessions it opened at once, and the CLI changes it
through the running daemon (the only writer of the store while it runs), never writing behind it.

A real daemon (Kamailio and all) on loopback; a real aiohttp client over HTTPS logs in on the page as a
browser would; the passwords are made and removed with the real CLI.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import ssl
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.lab.daemon import LifelineProcess


@dataclass
class Daemon:
    process: LifelineProcess
    status: dict[str, Any]
    passwords: list[str]

    def password(self, *args: str) -> str:
        done = self.process.cli("admin", "password", *args)
        made = done.stdout.splitlines()[1] if "--remove" not in args else ""
        if made:
            self.passwords.append(made)
        return made


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    work = Path(tempfile.mkdtemp(prefix="ll-"))  # short: the unix socket's path has a 108-byte limit
    process = LifelineProcess(work, {"api": {"port": 0}})
    try:
        made = Daemon(process, process.start(), [])
        made.password()  # the login form shows once an admin password is set
        yield made
    finally:
        process.stop()
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
async def browser(daemon: Daemon) -> AsyncIterator[aiohttp.ClientSession]:
    trust = ssl.create_default_context(cafile=daemon.status["api"]["certificate"])
    url = str(daemon.status["api"]["url"]).removesuffix("/api/v1/")
    jar = aiohttp.CookieJar(unsafe=True)  # the box is reached by its address: keep its cookies as a browser does
    async with aiohttp.ClientSession(base_url=url, connector=aiohttp.TCPConnector(ssl=trust), cookie_jar=jar) as s:
        yield s


async def log_in(browser: aiohttp.ClientSession, password: str) -> None:
    form = await (await browser.get("/ui/login")).text()
    match = re.search(r'name="csrf" value="([^"]+)"', form)
    assert match is not None, form
    response = await browser.post("/ui/login", data={"csrf": match[1], "password": password}, allow_redirects=False)
    assert response.status == 303, await response.text()
    assert await logged_in(browser)


async def logged_in(browser: aiohttp.ClientSession) -> bool:
    """Whether the session cookie still opens the page (and its live data)."""
    page = await browser.get("/ui/", allow_redirects=False)
    live = await browser.get("/ui/status.json")
    assert (page.status == 200) == (live.status == 200)
    return page.status == 200


def stored_events(daemon: Daemon) -> list[str]:
    with sqlite3.connect(f"file:{daemon.process.workdir / 'data' / 'lifeline.db'}?mode=ro", uri=True) as db:
        return [str(m) for (m,) in db.execute("SELECT message FROM events WHERE kind = 'admin' ORDER BY id")]


async def test_removing_the_viewer_password_ends_the_viewers_session_at_once(
    daemon: Daemon, browser: aiohttp.ClientSession
) -> None:
    viewer = daemon.password("--viewer")
    await log_in(browser, viewer)
    done = daemon.process.cli("admin", "password", "--viewer", "--remove")
    assert "removed" in done.stdout
    assert not await logged_in(browser)  # the same cookie, refused
    assert stored_events(daemon)[-1] == "viewer password removed (lifeline admin password)"  # by the daemon


async def test_a_new_viewer_password_ends_the_old_ones_sessions(daemon: Daemon, browser: aiohttp.ClientSession) -> None:
    await log_in(browser, daemon.password("--viewer"))
    daemon.password("--viewer")
    assert not await logged_in(browser)


async def test_a_new_admin_password_ends_the_admins_sessions_but_not_the_viewers(daemon: Daemon) -> None:
    admin, viewer = daemon.password(), daemon.password("--viewer")
    trust = ssl.create_default_context(cafile=daemon.status["api"]["certificate"])
    url = str(daemon.status["api"]["url"]).removesuffix("/api/v1/")

    def session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            base_url=url, connector=aiohttp.TCPConnector(ssl=trust), cookie_jar=aiohttp.CookieJar(unsafe=True)
        )

    async with session() as as_admin, session() as as_viewer:
        await log_in(as_admin, admin)
        await log_in(as_viewer, viewer)
        new_admin = daemon.password()
        assert not await logged_in(as_admin)
        assert await logged_in(as_viewer)
        await log_in(as_admin, new_admin)  # the new password opens a new session


def test_the_cli_sets_passwords_through_the_daemon_and_none_reaches_the_log(daemon: Daemon) -> None:
    daemon.password("--viewer")
    # Written by the daemon (the unix socket's caller is the CLI), not by the CLI behind it.
    assert stored_events(daemon)[-1] == "viewer password set (lifeline admin password)"
    refused = daemon.process.cli("admin", "password", "--remove", check=False)
    assert refused.returncode == 2 and "only removes the read-only password" in refused.stderr
    log = daemon.process.log_path.read_text()
    assert daemon.passwords and not any(p in log for p in daemon.passwords)
