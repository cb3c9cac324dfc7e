"""The AT command channel: one outstanding command at a time on the modem's AT port, each with its timeout."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from gateway.trunk import at
from gateway.trunk.errors import CommandError, CommandTimeoutError, PortGoneError
from gateway.trunk.link import Timeouts
from gateway.trunk.serialport import SerialPort


class AtChannel:
    """Commands out, replies back to their command, URCs to on_urc; lines cut from the port's bytes."""

    def __init__(self, timeouts: Timeouts, log: Any, on_urc: Callable[[at.Urc], None]) -> None:
        self.timeouts = timeouts
        self.log = log
        self._on_urc = on_urc
        self.port: SerialPort | None = None
        # Held for one exchange, or across several that belong together (the SMS prompt and its text).
        self.lock = asyncio.Lock()
        self.timeouts_in_row = 0
        self._splitter = at.LineSplitter()
        self._router = at.AtRouter()
        self._reply: asyncio.Future[at.Reply] | None = None

    def attach(self, port: SerialPort) -> None:
        """Talk on a freshly opened port: no half line or pending reply carries over from the last one."""
        self._splitter = at.LineSplitter()
        self._router = at.AtRouter()
        self.port = port

    def close(self) -> None:
        """Close the port; a command waiting for its reply gets PortGoneError."""
        if self.port is not None:
            self.port.close()
        self.port = None
        self.fail("port closed")

    def fail(self, why: str) -> None:
        """The port went away: the command waiting for its reply gets PortGoneError(why)."""
        if self._reply is not None and not self._reply.done():
            self._reply.set_exception(PortGoneError(why))

    def write(self, data: bytes) -> None:
        """Raw bytes to the AT port (DLE stream control); nothing when it is closed."""
        if self.port is not None:
            self.port.write(data)

    def feed(self, data: bytes) -> None:
        """Bytes read from the AT port: replies go to the waiting command, URCs to on_urc."""
        try:
            lines = self._splitter.feed(data)
        except ValueError as err:
            self.log.warning("garbage on the AT port", error=str(err))
            return
        for line in lines:
            event = self._router.feed(line)
            if isinstance(event, at.Reply):
                if self._reply is not None and not self._reply.done():
                    self._reply.set_result(event)
            elif isinstance(event, at.Urc):
                self._on_urc(event)

    async def command(
        self, command: str, limit: float | None = None, *, secret: bool = False, count_timeout: bool = True
    ) -> at.Reply:
        """Send one AT command and wait for its final result (one outstanding at a time)."""
        async with self.lock:
            return await self.exchange(command, limit, secret=secret, count_timeout=count_timeout)

    async def exchange(
        self,
        command: str,
        within: float | None = None,
        *,
        secret: bool = False,
        count_timeout: bool = True,
        payload: bytes | None = None,
    ) -> at.Reply:
        """One command and its reply; the caller holds self.lock. `payload` replaces the line on the wire."""
        shown = command.split("=", 1)[0] + "=****" if secret else command
        limit = within if within is not None else self.timeouts.for_command(command)
        port = self.port
        if port is None or port.gone:
            raise PortGoneError(f"{shown}: no port")
        self._reply = asyncio.get_running_loop().create_future()
        self._router.begin(command)
        try:
            port.write(payload if payload is not None else command.encode("latin-1") + b"\r")
            async with asyncio.timeout(limit):
                reply = await self._reply
        except TimeoutError:
            self._router.abandon()
            if count_timeout:
                self.timeouts_in_row += 1
            self.log.warning("command timed out", command=shown, timeout_s=limit, in_row=self.timeouts_in_row)
            if count_timeout and self.timeouts_in_row >= 2:
                raise CommandTimeoutError(f"{shown}: no answer within {limit:.1f} s, twice in a row") from None
            return at.Reply(shown, (), at.Final(at.FinalKind.ERROR, text="timeout"))
        finally:
            self._reply = None
        self.timeouts_in_row = 0
        self.log.debug("command", command=shown, result=str(reply.final))
        return replace(reply, command=shown) if secret else reply

    async def check(self, command: str) -> at.Reply:
        """A command that must succeed; CommandError otherwise."""
        reply = await self.command(command)
        if not reply.ok:
            raise CommandError(command, str(reply.final))
        return reply
