"""The recovery ladder: AT+CFUN=1,1 (ATZ on an analog modem) → USB re-enumeration → USB reset → bring-up."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import time
from typing import Any

from gateway.trunk import at
from gateway.trunk.at_channel import AtChannel
from gateway.trunk.call import CallEvent, CallTracker
from gateway.trunk.errors import CommandTimeoutError, PortGoneError
from gateway.trunk.link import LinkState, ModemStatus, Timeouts, UsbReset
from gateway.trunk.ports import ModemPorts, PortFinder
from gateway.trunk.profiles import Family, Profile


class RecoveryLadder(abc.ABC):
    """The RESET step of the link state machine (`ModemLink`), each fault one rung further up."""

    # The link's parts the ladder uses (set by ModemLink.__init__).
    profile: Profile
    finder: PortFinder
    timeouts: Timeouts
    usb_reset: UsbReset
    log: Any
    status: ModemStatus
    tracker: CallTracker
    ports: ModemPorts | None
    channel: AtChannel
    _gone: asyncio.Event
    _stopping: bool
    _ladder: int  # the rung the next fault starts on; back to 0 once the link is up again
    _needs_reset: str | None
    _needs_creset: bool  # SIMCom: only AT+CRESET (not AT+CFUN=1,1) cures its degraded PCM

    @abc.abstractmethod
    def _set_state(self, new: LinkState, reason: str) -> None: ...

    @abc.abstractmethod
    def _problem(self, text: str | None) -> None: ...

    @abc.abstractmethod
    def _emit_call(self, events: list[CallEvent]) -> None: ...

    @abc.abstractmethod
    def _open_ports(self, ports: ModemPorts) -> None: ...

    @abc.abstractmethod
    def _close_ports(self) -> None: ...

    @abc.abstractmethod
    async def _sleep(self, seconds: float) -> None: ...

    @abc.abstractmethod
    async def command(
        self, command: str, limit: float | None = None, *, secret: bool = False, count_timeout: bool = True
    ) -> at.Reply:
        """Send one AT command and wait for its final result."""

    async def _step_reset(self) -> None:
        self.status.resets += 1
        self._needs_reset = None  # this reset is the one that was due (AT+CRESET still comes first if needed)
        self._emit_call(self.tracker.line_lost())
        ports = self.ports
        rung = self._ladder
        self._ladder += 1
        dropped = self._gone.is_set()  # it went away by itself (brown-out, unplugged, reset elsewhere)
        if not dropped and rung == 0 and self.channel.port is not None and self.profile.family is Family.V253:
            # Rung 1 on an analog modem: V.250 has no reset that re-enumerates; ATZ restores its
            # profile (FCLASS back to data) and a fresh bring-up on the same ports follows.
            with contextlib.suppress(CommandTimeoutError, PortGoneError):
                if (await self.command("ATZ", count_timeout=False)).ok:
                    self._set_state(LinkState.PROBE, "ATZ answered: bringing the modem up again")
                    return
        elif not dropped and rung == 0 and self.channel.port is not None:
            # Rung 1: the modem's own full reset; it drops off the bus and comes back renamed.
            command = "AT+CRESET" if self._needs_creset else "AT+CFUN=1,1"
            self._needs_creset = False
            with contextlib.suppress(CommandTimeoutError, PortGoneError):
                reply = await self.command(command, count_timeout=False)
                if reply.ok:
                    dropped = await self._wait_gone(self.timeouts.port_drop)
        if not dropped:
            # Rung 2: the modem ignores us (or ignored the reset): reset its USB device.
            self.log.warning("modem did not drop off the bus; resetting its USB device", rung=rung)
            dropped = await self.usb_reset.reset(ports) and await self._wait_gone(self.timeouts.port_drop)
            if not dropped:
                self._problem("modem does not answer and this installation cannot reset its USB port")
        self._close_ports()
        if not dropped:
            await self._sleep(self.timeouts.retry * min(rung, 6))  # back off, then try the ports again
        self.log.info("waiting for the modem to enumerate", rung=rung)
        found = await self._wait_found(self.timeouts.reenumerate)
        if found is None:
            self._set_state(LinkState.ABSENT, "modem did not come back after reset")
            return
        self._open_ports(found)
        self._set_state(LinkState.PROBE, f"back as {found.at}")

    async def _wait_gone(self, within: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self._gone.wait()
                return True
        return False

    async def _wait_found(self, within: float) -> ModemPorts | None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline and not self._stopping:
            ports = await asyncio.to_thread(self.finder.find)
            if ports is not None:
                return ports
            await asyncio.sleep(min(0.5, self.timeouts.retry / 4))
        return None
