"""Reads a modem's IMEI for udev (IMPORT{program}), so its ports get names that survive re-enumeration.

Usage from a udev rule, for any port of a modem: `python -m gateway.hw.modemid ttyUSB1 2` asks the
modem's AT port (USB interface 2 of the same device: ttyUSB1 itself, or its sibling) `AT+CGSN` and
prints `LIFELINE_IMEI=<15 digits>`, or prints nothing and exits 1. Short timeouts: udev waits.
The udev rules then link every port as /dev/lifeline/by-imei/usb-<family>_<IMEI>-ifNN-port0, the
same shape as /dev/serial/by-id, so the trunk's port finder can use either directory.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import serial

TIMEOUT_S = 2.0
SYS_CLASS_TTY = Path("/sys/class/tty")
IMEI = re.compile(r"^(?:\+CGSN:\s*)?\"?(\d{15})\"?$")


def luhn_ok(digits: str) -> bool:
    """Whether the digits pass the Luhn check that an IMEI's last digit makes."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def parse_imei(reply: str) -> str:
    """The IMEI in an `AT+CGSN` reply (echo, blank lines and URCs allowed); ValueError if none."""
    lines = [line.strip() for line in reply.replace("\r", "\n").split("\n")]
    if "OK" not in lines:
        raise ValueError("no OK in the AT+CGSN reply")
    for line in lines:
        match = IMEI.match(line)
        if match:
            if not luhn_ok(match.group(1)):
                raise ValueError(f"{match.group(1)} fails the IMEI check digit")
            return match.group(1)
    raise ValueError("no 15-digit IMEI in the AT+CGSN reply")


def at_port_of(tty: str, at_interface: int, sys_class_tty: Path = SYS_CLASS_TTY) -> str:
    """The tty name of the AT interface of the USB device `tty` belongs to (possibly `tty` itself)."""
    # device → the interface (cdc-acm) or the usb-serial port below it (option, qcserial). A USB
    # interface directory is named <device>:<configuration>.<interface number>.
    interface = (sys_class_tty / tty / "device").resolve()
    if ":" not in interface.name:
        interface = interface.parent
    if ":" not in interface.name:
        raise ValueError(f"{tty} is not a USB serial port")
    usb_device = interface.parent
    for candidate in sorted(usb_device.glob(f"{usb_device.name}:*.{at_interface}")):
        ttys = sorted(p.name for p in candidate.glob("tty*") if p.name != "tty") + sorted(
            p.name for p in candidate.glob("tty/*")
        )
        if ttys:
            return ttys[0]
    raise ValueError(f"{tty}: its USB device has no tty on interface {at_interface}")


def read_imei(device: str, timeout: float = TIMEOUT_S) -> str:
    """Ask the modem on `device` for its IMEI (waiting while another port's helper asks it)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return _ask_imei(device, deadline)
        except serial.SerialException as err:
            # Two ports of one modem appear together; the other helper holds the AT port briefly.
            if "lock" not in str(err).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _ask_imei(device: str, deadline: float) -> str:
    timeout = max(0.1, deadline - time.monotonic())
    with serial.Serial(device, 115200, timeout=0.1, write_timeout=timeout, exclusive=True) as port:
        port.reset_input_buffer()
        port.write(b"AT+CGSN\r")
        reply = b""
        while time.monotonic() < deadline:
            reply += port.read(256)
            text = reply.decode("ascii", "replace")
            if "\nOK" in text or "ERROR" in text:
                return parse_imei(text)
    raise ValueError(f"{device}: no answer to AT+CGSN within {timeout} s")


def main(argv: list[str], sys_class_tty: Path = SYS_CLASS_TTY, dev: Path = Path("/dev")) -> int:
    """udev entry point: print LIFELINE_IMEI=… or nothing."""
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: python -m gateway.hw.modemid TTY AT_INTERFACE   (e.g. ttyUSB1 2)", file=sys.stderr)
        return 2
    try:
        imei = read_imei(str(dev / at_port_of(argv[0], int(argv[1]), sys_class_tty)))
    except (OSError, ValueError, serial.SerialException) as err:
        print(f"modemid: {err}", file=sys.stderr)
        return 1
    print(f"LIFELINE_IMEI={imei}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
