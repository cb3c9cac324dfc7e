"""The agent's events for the daemon, numbered in one stream: link changes, limit trips, SMS, emergency calls."""

from __future__ import annotations

import asyncio
import enum
import uuid
from collections import deque
from typing import Any


class EventKind(enum.StrEnum):
    """What an event line on GET /events is about (hello and keepalive carry no event)."""

    HELLO = "hello"  # the stream's first line: this agent's boot id, and where it starts
    KEEPALIVE = "keepalive"  # nothing new: the daemon's read timeout tells a quiet agent from a hung one
    LINK = "link"  # a modem left or reached READY
    LIMIT = "limit"  # a toll-fraud limit refused a call
    SMS = "sms"  # an SMS to the trunk's SIM
    EMERGENCY = "emergency"  # an emergency number dialled


class EventLog:
    """The last `keep` events, each with the next sequence number; waiters hear of each at once.

    Numbers start at 1 in each agent process, so `boot` (random per process) tells a reconnecting
    daemon whether its cursor still means anything: a new agent sends all it has instead.
    """

    def __init__(self, keep: int = 500) -> None:
        self.boot = uuid.uuid4().hex
        self.seq = 0
        self._events: deque[dict[str, Any]] = deque(maxlen=keep)
        self._news = asyncio.Event()
        self.closed = False

    def add(self, kind: EventKind, data: dict[str, Any]) -> dict[str, Any]:
        """Number an event, keep it, and wake every stream."""
        self.seq += 1
        event = {**data, "kind": kind.value, "seq": self.seq}
        self._events.append(event)
        news, self._news = self._news, asyncio.Event()
        news.set()
        return event

    def after(self, seq: int) -> list[dict[str, Any]]:
        """The kept events numbered above seq, oldest first."""
        return [e for e in self._events if e["seq"] > seq]

    async def wait(self, seq: int, timeout_s: float) -> list[dict[str, Any]]:
        """The events above seq, waiting up to timeout_s for one (empty on time-out or when closed)."""
        news = self.after(seq)
        if news or self.closed:
            return news
        waiter = self._news
        try:
            async with asyncio.timeout(timeout_s):
                await waiter.wait()
        except TimeoutError:
            return []
        return self.after(seq)

    def close(self) -> None:
        """The agent stops: every stream ends now rather than at its next keepalive."""
        self.closed = True
        self._news.set()
