"""HTTP for directory adapters: one bounded request at a time, library errors translated into FetchError."""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from multidict import CIMultiDict

from gateway.mirror.errors import FetchError, PayloadError

HINTS = {
    401: "the credentials were refused (check the token or client secret)",
    403: "the credentials lack the permission to read the directory",
    404: "no such resource (check the URL and the account id)",
}


@dataclass(frozen=True)
class Response:
    """A finished response whose body fitted under the cap."""

    status: int
    headers: CIMultiDict[str]
    body: bytes

    def json(self, where: str) -> Any:
        """The body as JSON; PayloadError naming the line when it is not."""
        try:
            return json.loads(self.body)
        except UnicodeDecodeError as err:
            raise PayloadError(f"{where}: the body is not UTF-8 text") from err
        except json.JSONDecodeError as err:
            raise PayloadError(f"{where}: not valid JSON: {err.msg} (line {err.lineno}, column {err.colno})") from err


def redact(url: str) -> str:
    """The URL without user info or query string (either may carry a credential)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    """Certificate-checking TLS; ca_file adds a private CA (the system CAs otherwise)."""
    ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    return ctx


def client_error_text(err: aiohttp.ClientError) -> str:
    """What went wrong with a request, in an installer's words (certificate, TLS, connection, other)."""
    if isinstance(err, aiohttp.ClientConnectorCertificateError):
        return f"TLS certificate not trusted: {err.certificate_error}"
    if isinstance(err, aiohttp.ClientSSLError):
        return f"TLS error: {err}"
    if isinstance(err, aiohttp.ClientConnectorError):
        return f"cannot connect: {err.os_error.strerror or err}"
    return f"{type(err).__name__}: {err}"


class HttpClient:
    """Requests with a total timeout and a cap on the response size."""

    def __init__(self, *, timeout_s: float, max_bytes: int, ca_file: Path | None = None) -> None:
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self._ssl = ssl_context(ca_file)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> HttpClient:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            connector=aiohttp.TCPConnector(ssl=self._ssl, limit=4),
        )
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        json_body: Any = None,
        form: dict[str, str] | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> Response:
        """One request; FetchError for a status outside ok, a timeout, TLS, the network or the size cap."""
        assert self._session is not None, "use HttpClient as an async context manager"
        where = f"{method} {redact(url)}"
        try:
            async with self._session.request(
                method, url, headers=headers, params=params, json=json_body, data=form, allow_redirects=False
            ) as resp:
                declared = resp.content_length
                if declared is not None and declared > self.max_bytes:
                    raise FetchError(f"{where}: response of {declared} bytes exceeds the cap of {self.max_bytes}")
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.content.iter_chunked(65536):
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise FetchError(
                            f"{where}: response exceeds the cap of {self.max_bytes} bytes; not read further"
                        )
                    chunks.append(chunk)
                if resp.status not in ok:
                    hint = HINTS.get(resp.status, "the server failed" if resp.status >= 500 else "unexpected status")
                    raise FetchError(f"{where}: HTTP {resp.status} {resp.reason or ''}".rstrip() + f": {hint}")
                return Response(resp.status, CIMultiDict(resp.headers), b"".join(chunks))
        except TimeoutError as err:
            raise FetchError(f"{where}: no complete answer within {self.timeout_s:g} s") from err
        except aiohttp.ClientError as err:
            raise FetchError(f"{where}: {client_error_text(err)}") from err
