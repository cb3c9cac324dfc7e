"""Sending a sealed backup to an operator-named HTTPS target (PUT, certificate checked, optional bearer token)."""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp

from gateway.errors import BackupError
from gateway.mirror.http import client_error_text, redact


def target_url(url: str, filename: str) -> str:
    """Where the file goes: url itself, or url + filename when url names a directory (ends with /)."""
    return url + filename if url.endswith("/") else url


async def put(url: str, data: bytes, *, token: str | None, ca_file: Path | None, timeout_s: float) -> int:
    """PUT data to url over HTTPS; returns the HTTP status (2xx), BackupError on anything else."""
    if not url.startswith("https://"):
        raise BackupError(f"{redact(url)}: backups are sent over HTTPS only")
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as err:
        raise BackupError(f"backup.ca_file = '{ca_file}': cannot load it: {err}") from err
    headers = {"Content-Type": "application/octet-stream"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    where = f"PUT {redact(url)}"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
            session.put(url, data=data, headers=headers, ssl=context) as response,
        ):
            if not 200 <= response.status < 300:
                raise BackupError(f"{where}: HTTP {response.status} {response.reason or ''}".rstrip())
            return response.status
    except TimeoutError as err:
        raise BackupError(f"{where}: no answer within {timeout_s:g} s") from err
    except aiohttp.ClientError as err:
        raise BackupError(f"{where}: {client_error_text(err)}") from err
