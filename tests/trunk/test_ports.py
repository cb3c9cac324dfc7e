"""Finding modem ports by by-id name and by USB VID:PID + interface, never by ttyUSBn."""

from __future__ import annotations

from pathlib import Path

from gateway.trunk.ports import ByIdFinder, ModemPorts, SysfsFinder
from gateway.trunk.profiles import PROFILES, Family


def test_by_id_finds_the_at_and_audio_interfaces(tmp_path: Path) -> None:
    dev = tmp_path / "dev"
    dev.mkdir()
    by_id = tmp_path / "by-id"
    by_id.mkdir()
    for n in range(4):
        (dev / f"ttyUSB{n}").touch()
    # After a brown-out the kernel handed out the numbers in another order; the links still say which is which.
    stem = "usb-Quectel_EC25-EG25_0123456789"
    for intf, tty in ((0, 3), (1, 2), (2, 0), (3, 1)):
        (by_id / f"{stem}-if{intf:02d}-port0").symlink_to(dev / f"ttyUSB{tty}")
    (by_id / "usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0").symlink_to(dev / "ttyUSB1")
    found = ByIdFinder(PROFILES[Family.QUECTEL], match="Quectel", directory=by_id).find()
    assert found == ModemPorts(str(dev / "ttyUSB0"), str(dev / "ttyUSB2"), stem)


def test_by_id_waits_for_both_ports_and_ignores_stale_links(tmp_path: Path) -> None:
    by_id = tmp_path / "by-id"
    by_id.mkdir()
    (by_id / "usb-SimTech__Incorporated_X-if02-port0").symlink_to(tmp_path / "ttyUSB9")  # target gone
    assert ByIdFinder(PROFILES[Family.SIMCOM], directory=by_id).find() is None
    (tmp_path / "ttyUSB9").touch()
    assert ByIdFinder(PROFILES[Family.SIMCOM], directory=by_id).find() is None  # audio (if04) missing
    (tmp_path / "ttyUSB4").touch()
    (by_id / "usb-SimTech__Incorporated_X-if04-port0").symlink_to(tmp_path / "ttyUSB4")
    found = ByIdFinder(PROFILES[Family.SIMCOM], directory=by_id).find()
    assert found is not None and found.audio == str(tmp_path / "ttyUSB4")
    assert ByIdFinder(PROFILES[Family.SIMCOM], directory=tmp_path / "missing").find() is None


def test_sysfs_finds_by_vid_pid_and_interface(tmp_path: Path) -> None:
    sysfs, dev = tmp_path / "sys", tmp_path / "dev"
    dev.mkdir()
    device = sysfs / "1-1.3"
    device.mkdir(parents=True)
    (device / "idVendor").write_text("12d1\n")
    (device / "idProduct").write_text("1001\n")
    for intf, tty in ((0, 7), (1, 5), (2, 6)):
        (device / f"1-1.3:1.{intf}" / f"ttyUSB{tty}").mkdir(parents=True)
        (dev / f"ttyUSB{tty}").touch()
    other = sysfs / "1-1.2"
    other.mkdir()
    (other / "idVendor").write_text("0403\n")
    (other / "idProduct").write_text("6001\n")
    found = SysfsFinder(PROFILES[Family.HUAWEI], root=sysfs, dev_dir=dev).find()
    assert found == ModemPorts(str(dev / "ttyUSB6"), str(dev / "ttyUSB5"), "usb-1-1.3")
    assert SysfsFinder(PROFILES[Family.QUECTEL], root=sysfs, dev_dir=dev).find() is None
