"""Resetting a modem's USB device through sysfs, against a sysfs-shaped tree."""

from __future__ import annotations

from pathlib import Path

from gateway.trunk.ports import ModemPorts
from gateway.trunk.usbreset import SysfsUsbReset


def sysfs(tmp_path: Path) -> tuple[Path, Path]:
    device = tmp_path / "devices" / "usb1" / "1-1" / "1-1.3"
    tty = device / "1-1.3:1.2" / "ttyUSB2"
    tty.mkdir(parents=True)
    (device / "idVendor").write_text("2c7c\n")
    (device / "authorized").write_text("1\n")
    tty_class = tmp_path / "class" / "tty" / "ttyUSB2"
    tty_class.mkdir(parents=True)
    (tty_class / "device").symlink_to(tty.parent)
    return tmp_path / "class" / "tty", device


async def test_reset_toggles_authorized_on_the_usb_device(tmp_path: Path) -> None:
    tty_class, device = sysfs(tmp_path)
    reset = SysfsUsbReset(tty_class, settle_s=0)
    assert reset.usb_device("/dev/ttyUSB2") == device
    assert await reset.reset(ModemPorts("/dev/ttyUSB2", None, "usb-x"))
    assert (device / "authorized").read_text() == "1"


async def test_reset_says_no_when_it_cannot(tmp_path: Path) -> None:
    tty_class, device = sysfs(tmp_path)
    reset = SysfsUsbReset(tty_class, settle_s=0)
    assert not await reset.reset(None)
    assert not await reset.reset(ModemPorts("/dev/ttyUSB9", None, "usb-y"))
    (device / "authorized").chmod(0o444)
    (device / "authorized").unlink()
    (device / "authorized").mkdir()  # writing fails (as without root)
    assert not await reset.reset(ModemPorts("/dev/ttyUSB2", None, "usb-x"))
