"""The simulator's stand-in for resetting a modem's USB device (the driver's UsbReset seam)."""

from __future__ import annotations

import asyncio

from gateway.trunk.ports import ModemPorts
from gateway.trunk.sim.modem import SimModem


class SimUsbReset:
    """Resets a simulated modem the way a hub power-cycle resets a real one: it re-enumerates."""

    def __init__(self, sim: SimModem) -> None:
        self.sim = sim
        self.resets = 0
        self._task: asyncio.Task[None] | None = None

    async def reset(self, ports: ModemPorts | None) -> bool:
        """Drop the simulated modem off the bus; it comes back renamed after its reset gap."""
        self.resets += 1
        self._task = asyncio.create_task(self.sim.replug())
        return True
