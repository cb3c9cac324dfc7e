"""Waiting on an event in the lab, the tests and the benchmarks: poll a predicate until it holds."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 10.0, step: float = 0.005) -> float:
    """Poll until predicate holds; the seconds it took (AssertionError naming what after timeout)."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)
    return time.monotonic() - start
