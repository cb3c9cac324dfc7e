from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gateway.mirror.adapters.lifeline_api import LifelineDirectory
from gateway.mirror.http import HttpClient
from gateway.store import Store
from tests.mirror.fakes import FakeLifelineApi, lifeline_record, running

REALM = "asterisk"
PASSWORDS = {"2001": "first-secret-2001", "2002": "second-secret-2002", "2003": "third-secret-2003"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "lifeline.db")
    yield s
    s.close()


@pytest.fixture
def fake_api() -> FakeLifelineApi:
    api = FakeLifelineApi(token="test-token", realm=REALM)
    for number, password in PASSWORDS.items():
        api.put(lifeline_record(number, password))
    return api


@pytest.fixture
async def api_url(fake_api: FakeLifelineApi) -> AsyncIterator[str]:
    async with running(fake_api.app) as url:
        yield url


def lifeline_source(
    url: str, *, timeout_s: float = 5.0, max_bytes: int = 50_000_000, **kw: object
) -> LifelineDirectory:
    http = HttpClient(timeout_s=timeout_s, max_bytes=max_bytes, ca_file=kw.pop("ca_file", None))  # type: ignore[arg-type]
    return LifelineDirectory(url=url, token=str(kw.pop("token", "test-token")), realm=REALM, http=http, page_size=2)


@pytest.fixture(scope="session")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no system CA vouches for (cert, key)."""
    work = tmp_path_factory.mktemp("tls")
    cert, key = work / "cert.pem", work / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key
