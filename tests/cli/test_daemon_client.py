"""The CLI writes the store itself only when no daemon is there; a daemon that fails or hangs is reported."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import structlog
from aiohttp import web

from gateway.cli import client
from gateway.cli.main import main
from gateway.lab.daemon import LifelineProcess
from gateway.store import Store
from tests.served import served_in_thread

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
def lifeline() -> Iterator[LifelineProcess]:
    """A config whose run directory is short enough for a unix socket path (108 bytes)."""
    work = Path(tempfile.mkdtemp(prefix="ll-"))
    (work / "phones.csv").write_text("number,password\n2001,first-secret-2001\n")
    yield LifelineProcess(work, {"mirror": {"source": "file", "file": str(work / "phones.csv")}})
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(autouse=True)
def reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()  # main() pointed structlog at capsys's stderr


@contextlib.contextmanager
def fake_daemon(path: Path, handler: Handler) -> Iterator[None]:
    """Serve handler for every request on the unix socket path, from a thread with its own loop."""
    path.parent.mkdir(parents=True, exist_ok=True)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    with served_in_thread(app, lambda runner: web.UnixSite(runner, str(path)), access_log=None, shutdown_timeout=0.2):
        yield


def answer(status: int, body: str, content_type: str = "application/json") -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, text=body, content_type=content_type)

    return handler


async def never_answers(request: web.Request) -> web.StreamResponse:
    await asyncio.Event().wait()  # cancelled when the client hangs up or the server stops
    raise AssertionError("unreachable")


def cli(lifeline: LifelineProcess, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--config", str(lifeline.config_path), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def stored(lifeline: LifelineProcess, key: str) -> object:
    """What the store holds under key (read directly, as the CLI would without a daemon)."""
    store = Store(lifeline.workdir / "data" / "lifeline.db")
    try:
        return store.get_state(key)
    finally:
        store.close()


def mirrored(lifeline: LifelineProcess) -> int:
    store = Store(lifeline.workdir / "data" / "lifeline.db")
    try:
        return store.count_extensions()
    finally:
        store.close()


def api_socket(lifeline: LifelineProcess) -> Path:
    return lifeline.workdir / "run" / "lifeline.sock"


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        (answer(500, '{"error": "database is locked"}'), "the daemon failed PUT /api/v1/mode (HTTP 500 Internal"),
        (answer(400, '{"error": "mode: expected one of auto"}'), "the daemon refused PUT /api/v1/mode (HTTP 400"),
        (answer(502, "<html>bad gateway</html>", "text/html"), "(HTTP 502 Bad Gateway): no detail"),
        (answer(200, "<html>a web page</html>", "text/html"), "answered PUT /api/v1/mode with something that is not"),
    ],
)
def test_mode_reports_a_failing_daemon_and_writes_nothing_behind_it(
    lifeline: LifelineProcess, capsys: pytest.CaptureFixture[str], handler: Handler, expected: str
) -> None:
    with fake_daemon(api_socket(lifeline), handler):
        code, out, err = cli(lifeline, capsys, "mode", "survival")
    assert code == 1 and out == ""
    assert expected in err and "not written behind the running daemon" in err
    assert stored(lifeline, "mode") is None


def test_mode_reports_a_hung_daemon_as_a_timeout(
    lifeline: LifelineProcess, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client, "TIMEOUT", client.aiohttp.ClientTimeout(total=0.3))
    with fake_daemon(api_socket(lifeline), never_answers):
        code, _, err = cli(lifeline, capsys, "mode", "survival")
        assert (code, stored(lifeline, "mode")) == (1, None)
        assert "did not answer PUT /api/v1/mode within 0.3 s" in err
        code, _, err = cli(lifeline, capsys, "mirror", "sync")
        assert code == 1 and "did not answer POST /api/v1/mirror/sync within 0.3 s" in err
        assert "not synced behind the running daemon" in err and mirrored(lifeline) == 0
        code, out, err = cli(lifeline, capsys, "status")
        assert code == 1 and "NOT RUNNING" not in out and "did not answer GET /api/v1/status" in err


def test_mirror_sync_reports_a_failing_daemon_and_syncs_nothing_behind_it(
    lifeline: LifelineProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    with fake_daemon(api_socket(lifeline), answer(503, '{"error": "shutting down"}')):
        code, _, err = cli(lifeline, capsys, "mirror", "sync")
    assert code == 1 and "(HTTP 503 Service Unavailable): shutting down; not synced behind" in err
    assert mirrored(lifeline) == 0


def test_without_a_socket_the_cli_writes_the_store_itself(
    lifeline: LifelineProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(lifeline, capsys, "mode", "survival")
    assert code == 0 and "daemon not running (no daemon at" in out and "it starts in SURVIVAL" in out
    assert stored(lifeline, "mode")["override"] == "survival"  # type: ignore[index]
    code, out, _ = cli(lifeline, capsys, "mirror", "sync")
    assert code == 0 and "applied to the store directly" in out and mirrored(lifeline) == 1


def test_a_socket_left_by_a_dead_daemon_counts_as_no_daemon(
    lifeline: LifelineProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    path = api_socket(lifeline)
    path.parent.mkdir(parents=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as left:
        left.bind(str(path))  # the file exists, nobody listens: connections are refused
        code, out, _ = cli(lifeline, capsys, "mode", "survival")
    assert code == 0 and "Connection refused" in out
    assert stored(lifeline, "mode")["override"] == "survival"  # type: ignore[index]


@pytest.mark.parametrize("args", [("--viewer",), ("--viewer", "--remove")])
def test_admin_password_reports_a_failing_daemon_and_writes_nothing_behind_it(
    lifeline: LifelineProcess, capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    code, _, err = cli(lifeline, capsys, "admin", "password", "--viewer")  # no daemon: written by the CLI
    assert code == 0 and stored(lifeline, "viewer_password") is not None
    before = stored(lifeline, "viewer_password")
    with fake_daemon(api_socket(lifeline), answer(500, '{"error": "database is locked"}')):
        code, out, err = cli(lifeline, capsys, "admin", "password", *args)
    assert code == 1 and out == ""
    assert "(HTTP 500 Internal Server Error): database is locked; not written behind the running daemon" in err
    assert stored(lifeline, "viewer_password") == before
