"""The seam between the sync engine and the vendors: `DirectorySource`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from gateway.mirror.model import Batch

# (entries fetched so far, total if the source knows it)
Progress = Callable[[int, int | None], None]


def no_progress(_done: int, _total: int | None) -> None:
    """A progress callback that shows nothing."""


class DirectorySource(Protocol):
    """A cloud PBX directory (or a file) that Lifeline mirrors."""

    @property
    def name(self) -> str:
        """Stable name of the source; rows in the store belong to it."""
        ...

    def describe(self) -> dict[str, str]:
        """What `lifeline status` shows about the source (never a credential)."""
        ...

    async def fetch(self, cursor: str | None, progress: Progress) -> Batch:
        """The changes since cursor (or the whole directory when cursor is None, or when the source has no feed).

        Raises FetchError or PayloadError; never returns a partial directory as a full one.
        """
        ...
