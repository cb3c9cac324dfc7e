"""Shared helpers for the hardware tests: waiting on conditions and reading MockPin histories."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any


async def wait_for(predicate: Callable[[], bool], within: float, what: str) -> None:
    """Poll `predicate` until it holds; fail naming `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.02)


def pulse_groups(pin: Any, gap_s: float = 1.0) -> list[int]:
    """Count the on-pulses between long dark gaps in a MockPin's history (what a person counts)."""
    groups: list[int] = []
    count = 0
    # states[i].timestamp is how long the pin stayed in states[i-1]'s level before changing to states[i].
    states = pin.states
    for previous, current in itertools.pairwise(states):
        if previous.state is False and current.timestamp >= gap_s:
            groups.append(count)
            count = 0
        if current.state is True:
            count += 1
    return groups[1:]  # the first group started before the pattern did
