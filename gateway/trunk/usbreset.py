"""The last rung of the recovery ladder on real hardware: re-authorise the modem's USB device in sysfs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog

from gateway.trunk.ports import ModemPorts

log = structlog.get_logger("trunk.usb")


class SysfsUsbReset:
    """Writes 0 then 1 to the device's `authorized` file: the kernel unbinds and re-enumerates it.

    Needs root (the appliance's udev rule can grant the lifeline group write access instead). It
    does what unplugging does, short of cutting power; a powered hub with per-port switching
    (uhubctl) is the stronger remedy for a modem that is wedged hard.
    """

    def __init__(self, tty_class: Path = Path("/sys/class/tty"), settle_s: float = 1.0) -> None:
        self.tty_class = tty_class
        self.settle_s = settle_s

    def usb_device(self, tty: str) -> Path | None:
        """The sysfs directory of the USB device a tty belongs to (the one with idVendor)."""
        name = Path(tty).resolve().name
        current = (self.tty_class / name / "device").resolve()
        for candidate in (current, *current.parents):
            if (candidate / "idVendor").exists() and (candidate / "authorized").exists():
                return candidate
        return None

    async def reset(self, ports: ModemPorts | None) -> bool:
        """Reset the modem's USB device; False when it cannot be found or written."""
        if ports is None:
            return False
        device = await asyncio.to_thread(self.usb_device, ports.at)
        if device is None:
            log.warning("no USB device found for the modem's port", port=ports.at)
            return False
        flag = device / "authorized"
        try:
            await asyncio.to_thread(flag.write_text, "0")
            await asyncio.sleep(self.settle_s)
            await asyncio.to_thread(flag.write_text, "1")
        except OSError as err:
            log.warning("cannot reset the modem's USB device", device=str(device), error=err.strerror)
            return False
        log.info("modem USB device reset", device=str(device))
        return True
