"""The udev helper that names a modem's AT port by IMEI: reply parsing, and a real exchange over a pty."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest

from gateway.hw.modemid import at_port_of, luhn_ok, main, parse_imei, read_imei

IMEI = "490154203237518"  # the GSMA's example IMEI (valid check digit)


def test_parses_the_imei_among_echo_blank_lines_and_urcs() -> None:
    assert parse_imei(f"AT+CGSN\r\r\n{IMEI}\r\n\r\nOK\r\n") == IMEI
    assert parse_imei(f'\r\n+CGSN: "{IMEI}"\r\n^RSSI: 14\r\nOK\r\n') == IMEI


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ("\r\nERROR\r\n", "no OK in the AT+CGSN reply"),
        ("\r\n12345\r\nOK\r\n", "no 15-digit IMEI in the AT+CGSN reply"),
        ("\r\n490154203237519\r\nOK\r\n", "490154203237519 fails the IMEI check digit"),
    ],
)
def test_bad_replies_say_what_is_wrong(reply: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_imei(reply)
    assert luhn_ok(IMEI) and not luhn_ok(IMEI[:-1] + "9")


def tty_class(tmp_path: Path, pty: str) -> Path:
    """A /sys/class/tty where the pty looks like a cdc-acm modem's only interface."""
    interface = tmp_path / "devices/usb1/1-1/1-1:1.0"
    (interface / "tty" / Path(pty).name).mkdir(parents=True)
    cls = tmp_path / "class/tty" / Path(pty).name
    cls.mkdir(parents=True)
    (cls / "device").symlink_to(interface)
    return tmp_path / "class/tty"


def test_asks_a_modem_on_a_tty(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    master, slave = os.openpty()
    path = os.ttyname(slave)

    def modem() -> None:
        request = b""
        while not request.endswith(b"\r"):
            request += os.read(master, 64)
        assert request == b"AT+CGSN\r"
        os.write(master, f"AT+CGSN\r\r\n{IMEI}\r\n\r\nOK\r\n".encode())

    thread = threading.Thread(target=modem, daemon=True)
    thread.start()
    try:
        assert read_imei(path) == IMEI
        thread.join(5)
        silent = threading.Thread(target=lambda: os.read(master, 64), daemon=True)
        silent.start()
        assert main([Path(path).name, "0"], sys_class_tty=tty_class(tmp_path, path), dev=Path(path).parent) == 1
        assert "no answer to AT+CGSN" in capsys.readouterr().err
    finally:
        os.close(master)
        os.close(slave)


def test_any_port_finds_its_modems_at_port_through_sysfs(tmp_path: Path) -> None:
    # The shape of sysfs for an option/qcserial modem and for a cdc-acm one.
    usb = tmp_path / "devices/usb1/1-1/1-1.3"
    for number in range(4):
        (usb / f"1-1.3:1.{number}" / f"ttyUSB{number}").mkdir(parents=True)
    acm = tmp_path / "devices/usb1/1-1/1-1.4/1-1.4:1.0"
    (acm / "tty/ttyACM0").mkdir(parents=True)
    cls = tmp_path / "class/tty"
    cls.mkdir(parents=True)
    for number in range(4):
        (cls / f"ttyUSB{number}").mkdir()
        (cls / f"ttyUSB{number}" / "device").symlink_to(usb / f"1-1.3:1.{number}" / f"ttyUSB{number}")
    (cls / "ttyACM0").mkdir()
    (cls / "ttyACM0" / "device").symlink_to(acm)
    assert at_port_of("ttyUSB1", 2, cls) == "ttyUSB2"  # the audio port asks through its sibling
    assert at_port_of("ttyUSB2", 2, cls) == "ttyUSB2"
    assert at_port_of("ttyACM0", 0, cls) == "ttyACM0"
    with pytest.raises(ValueError, match="its USB device has no tty on interface 5"):
        at_port_of("ttyUSB0", 5, cls)
