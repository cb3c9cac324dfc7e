"""Run a simulated modem on its own thread and event loop (for tests that pump pjsua2, and the lab)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from gateway.trunk.sim.modem import FarEnd, SimConfig, SimModem

T = TypeVar("T")


class SimThread:
    """A SimModem whose loop runs on a background thread; `call` runs things on that loop."""

    def __init__(self, config: SimConfig, by_id_dir: Path, far_end: FarEnd | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sim-modem", daemon=True)
        self.sim = SimModem(config, by_id_dir, far_end)

    def start(self, timeout: float = 10.0) -> None:
        """Start the loop and plug the modem in."""
        self._thread.start()
        self.run(self.sim.start, timeout=timeout)

    def run(self, fn: Callable[[], Coroutine[Any, Any, T]], timeout: float = 10.0) -> T:
        """Await fn() on the simulator's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(fn(), self._loop).result(timeout)

    def call(self, fn: Callable[..., T], *args: Any, timeout: float = 10.0) -> T:
        """Call fn(*args) on the simulator's loop (its state is not thread-safe) and return the result."""
        future: Future[T] = Future()

        def invoke() -> None:
            try:
                future.set_result(fn(*args))
            except Exception as err:  # handed to the caller's thread
                future.set_exception(err)

        self._loop.call_soon_threadsafe(invoke)
        return future.result(timeout)

    def stop(self) -> None:
        """Unplug the modem and stop the loop."""
        if self._thread.is_alive():
            self.run(self.sim.stop)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()
