"""An aiohttp app served from a thread with its own event loop, for synchronous tests (fake daemons and servers)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web


@contextmanager
def served_in_thread(
    app: web.Application, site: Callable[[web.AppRunner], web.BaseSite], **runner_options: Any
) -> Iterator[web.AppRunner]:
    """Serve app on the site that site(runner) makes until the block ends; yields the runner (its addresses)."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, **runner_options)

    async def start() -> None:
        await runner.setup()
        await site(runner).start()

    thread = threading.Thread(target=loop.run_forever, name="served-app", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(start(), loop).result(10)
        yield runner
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
