"""A CSV or JSON file as a directory source, for installers with no API (see gateway/mirror/files.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.errors import ImportRowsError
from gateway.mirror.errors import PayloadError
from gateway.mirror.files import read_extensions_file
from gateway.mirror.model import Batch, DirectoryEntry
from gateway.mirror.source import Progress


class FileDirectory:
    """The whole file is the directory, re-read on every sync and diffed by content hash."""

    name = "file"

    def __init__(self, path: Path, realm: str) -> None:
        self.path = path
        self.realm = realm

    def describe(self) -> dict[str, str]:
        """Kind and path."""
        return {"kind": "file", "path": str(self.path)}

    async def fetch(self, cursor: str | None, progress: Progress) -> Batch:
        """Read and hash the file off the event loop; PayloadError naming every bad row."""
        try:
            parsed = await asyncio.to_thread(read_extensions_file, self.path, self.realm)
        except ImportRowsError as err:
            raise PayloadError(f"{self.path}: " + "; ".join(err.problems[:5])) from err
        count = len(parsed.extensions)
        progress(count, count)
        entries = (
            DirectoryEntry(e.number, e, short_password=e.number in parsed.short_passwords) for e in parsed.extensions
        )
        return Batch(full=True, entries=tuple(entries))
