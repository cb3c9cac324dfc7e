"""Reads a modem's IMEI for udev (IMPORT{program}), so its ports get names that survive re-enumeration.

Usage from a udev rule: `python -m gateway.hw.modemid /dev/ttyUSB2` prints `LIFELINE_IMEI=<15 digits>`
and exits 0, or prints nothing and exits 1. It asks once (`AT+CGSN`) with a short timeout: udev waits.
"""

from __future__ import annotations

import re
import sys
import time

import serial

TIMEOUT_S = 2.0
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


def read_imei(device: str, timeout: float = TIMEOUT_S) -> str:
    """Ask the modem on `device` for its IMEI."""
    deadline = time.monotonic() + timeout
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


def main(argv: list[str]) -> int:
    """udev entry point: print LIFELINE_IMEI=… or nothing."""
    if len(argv) != 1:
        print("usage: python -m gateway.hw.modemid /dev/ttyUSBn", file=sys.stderr)
        return 2
    try:
        imei = read_imei(argv[0])
    except (OSError, ValueError, serial.SerialException) as err:
        print(f"modemid: {err}", file=sys.stderr)
        return 1
    print(f"LIFELINE_IMEI={imei}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
