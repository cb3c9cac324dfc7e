"""Every kind of bad directory answer: a clear error in the log and the status, and the last good mirror stays."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import web

from gateway.mirror.engine import SyncEngine
from gateway.mirror.errors import FetchError, MirrorError, PayloadError, RefusedError
from gateway.store import Store
from tests.mirror.conftest import PASSWORDS, REALM, lifeline_source
from tests.mirror.fakes import FakeLifelineApi, lifeline_record, running

MB = 1024 * 1024


async def malformed_json(request: web.Request) -> web.StreamResponse:
    return web.Response(text='{"version": 1, "extensions": [', content_type="application/json")


async def server_error(request: web.Request) -> web.StreamResponse:
    return web.Response(status=500, text="boom")


async def second_page_fails(request: web.Request) -> web.StreamResponse | None:
    return web.Response(status=500) if "page=" in request.path_qs else None


async def huge(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    chunk = b" " * MB
    try:
        await response.write(b'{"extensions": [')
        for _ in range(51):  # 51 MiB of whitespace: valid JSON so far, but over the cap
            await response.write(chunk)
    except (ConnectionError, RuntimeError):
        pass  # the client hung up at the cap, as it should
    return response


async def never_answers(request: web.Request) -> web.StreamResponse:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


def fault(handler: Any) -> Callable[[FakeLifelineApi], dict[str, Any]]:
    def arm(api: FakeLifelineApi) -> dict[str, Any]:
        api.fault = handler
        return {}

    return arm


def edit(change: Callable[[FakeLifelineApi], None], **source_kw: Any) -> Callable[[FakeLifelineApi], dict[str, Any]]:
    def arm(api: FakeLifelineApi) -> dict[str, Any]:
        change(api)
        return source_kw

    return arm


def wrong_type(api: FakeLifelineApi) -> None:
    api.put({**lifeline_record("2009", "ninth-secret-2009"), "number": 2009})


def missing_number(api: FakeLifelineApi) -> None:
    record = lifeline_record("2009", "ninth-secret-2009")
    del record["number"]
    api.put(record)


def no_credential(api: FakeLifelineApi) -> None:
    record = lifeline_record("2009", "ninth-secret-2009")
    del record["password"]
    api.put(record)


def duplicate_number(api: FakeLifelineApi) -> None:
    api.put({**lifeline_record("2001", "another-secret"), "id": "id-other", "auth_user": "other"})


def realm_changes(api: FakeLifelineApi) -> None:
    api.realm = "pbx.example.com"
    api.put(lifeline_record("2001", PASSWORDS["2001"]))  # forces a change so the ETag moves


CASES: dict[str, tuple[Callable[[FakeLifelineApi], dict[str, Any]], type[MirrorError], str]] = {
    "malformed JSON": (fault(malformed_json), PayloadError, r"page 1: not valid JSON: Expecting value \(line 1"),
    "wrong type": (
        edit(wrong_type),
        PayloadError,
        r"page 2: extensions\[1\]\.number: Input should be a valid string \(got int\)",
    ),
    "missing field": (edit(missing_number), PayloadError, r"page 2: extensions\[1\]\.number: missing"),
    "no credential": (
        edit(no_credential),
        PayloadError,
        r"page 2: extensions\[1\]: Value error, give exactly one of password and ha1",
    ),
    "duplicate number": (edit(duplicate_number), PayloadError, r"duplicate number\(s\): 2001"),
    "HTTP 401": (
        edit(lambda a: None, token="wrong-token"),
        FetchError,
        r"HTTP 401 Unauthorized: the credentials were refused",
    ),
    "HTTP 404": (
        edit(lambda a: None, path="/nope"),
        FetchError,
        r"/nope/v1/directory: HTTP 404 Not Found: no such resource",
    ),
    "HTTP 500": (fault(server_error), FetchError, r"HTTP 500 Internal Server Error: the server failed"),
    "partial listing": (fault(second_page_fails), FetchError, r"HTTP 500"),
    "50 MB response": (fault(huge), FetchError, r"response exceeds the cap of 50000000 bytes"),
    "timeout": (
        edit(lambda a: setattr(a, "fault", never_answers), timeout_s=0.5),
        FetchError,
        r"no complete answer within 0.5 s",
    ),
    "realm changes": (
        edit(realm_changes),
        RefusedError,
        r"realm changed: 3 extension\(s\) \(e\.g\. 2001\) are in realm 'pbx\.example\.com'",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_bad_answer_keeps_the_last_good_mirror(
    case: str, store: Store, fake_api: FakeLifelineApi, api_url: str
) -> None:
    arm, error, message = CASES[case]
    await SyncEngine(store, lifeline_source(api_url), REALM).run()
    good = store.mirror_rows("lifeline")
    kw = arm(fake_api)
    url = api_url + kw.pop("path", "")
    engine = SyncEngine(store, lifeline_source(url, **kw), REALM)
    with structlog.testing.capture_logs() as logs, pytest.raises(error, match=message):
        await engine.run(full=True)
    assert store.mirror_rows("lifeline") == good
    health = store.get_state("mirror.lifeline")
    assert health["extensions"] == 3 and health["last_ok"] is not None
    assert health["last_error"] is not None
    assert next(e for e in logs if e["event"].startswith("directory sync failed"))["error"] == health["last_error"]
    assert store.recent_events(1)[0]["kind"] == "mirror_error"
    for password in PASSWORDS.values():
        assert password not in repr(logs) + health["last_error"]


async def test_untrusted_tls_certificate_is_refused_and_a_private_ca_is_accepted(
    store: Store, fake_api: FakeLifelineApi, self_signed: tuple[Path, Path]
) -> None:
    cert, key = self_signed
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    async with running(fake_api.app, ctx) as url:
        assert url.startswith("https://")
        with pytest.raises(FetchError, match=r"TLS certificate not trusted: .*certificate verify failed"):
            await SyncEngine(store, lifeline_source(url), REALM).run()
        assert store.mirror_rows("lifeline") == []
        result = await SyncEngine(store, lifeline_source(url, ca_file=cert), REALM).run()
        assert result.total == 3
