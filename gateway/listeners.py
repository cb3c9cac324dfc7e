"""The one listener idiom: `thing.on_event.add(fn)`; the owner calls `emit(...)`, every listener in the order added."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, ParamSpec

import structlog

P = ParamSpec("P")
log = structlog.get_logger("listeners")


class Listeners(Generic[P]):
    """Functions told of one kind of event, synchronously (the modem's URC reader, pjsua2's thread)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._fns: list[Callable[P, None]] = []

    def add(self, fn: Callable[P, None]) -> None:
        """Tell fn of every event from now on."""
        self._fns.append(fn)

    def emit(self, *args: P.args, **kwargs: P.kwargs) -> None:
        """Tell every listener; one that raises is logged and the others are still told."""
        for fn in list(self._fns):  # a listener may add another while being told
            try:
                fn(*args, **kwargs)
            except Exception:
                log.exception("listener failed", event=self.name)


class AsyncListeners(Generic[P]):
    """Coroutines told of one kind of event, one after another, on the event loop."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._fns: list[Callable[P, Awaitable[None]]] = []

    def add(self, fn: Callable[P, Awaitable[None]]) -> None:
        """Tell fn of every event from now on."""
        self._fns.append(fn)

    async def emit(self, *args: P.args, **kwargs: P.kwargs) -> None:
        """Tell every listener in turn; one that raises is logged and the others are still told."""
        for fn in list(self._fns):
            try:
                await fn(*args, **kwargs)
            except Exception:
                log.exception("listener failed", event=self.name)
