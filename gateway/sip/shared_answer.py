"""One question to Kamailio in flight at a time, its answer shared by everyone who asks meanwhile."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from gateway.errors import RpcError

T = TypeVar("T")


class SharedAnswer(Generic[T]):
    """Asks once for all who wait; a caller that stops waiting leaves the question running, not cancelled.

    Cancelling it would leave its worker thread blocked on a hung Kamailio while the next caller starts
    another: a status page polling a hung Kamailio would pile threads up in the daemon's default pool.
    """

    def __init__(self, ask: Callable[[], Awaitable[T]]) -> None:
        self._ask = ask
        self._task: asyncio.Task[T] | None = None

    async def within(self, seconds: float) -> T | None:
        """The answer, None when Kamailio fails the question or does not answer within seconds."""
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._ask())
            self._task.add_done_callback(_retrieved)
        try:
            async with asyncio.timeout(seconds):
                return await asyncio.shield(self._task)
        except (RpcError, TimeoutError):
            return None


def _retrieved(task: asyncio.Task[T]) -> None:
    # Every waiter may have gone: the question's error is read here, not reported as never retrieved.
    if not task.cancelled():
        task.exception()
