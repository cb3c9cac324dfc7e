"""The udev helper that names a modem's AT port by IMEI: reply parsing, and a real exchange over a pty."""

from __future__ import annotations

import os
import re
import threading

import pytest

from gateway.hw.modemid import luhn_ok, main, parse_imei, read_imei

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


def test_asks_a_modem_on_a_tty(capsys: pytest.CaptureFixture[str]) -> None:
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
        assert main([path]) == 1  # nobody answers this time
        assert "no answer to AT+CGSN" in capsys.readouterr().err
    finally:
        os.close(master)
        os.close(slave)
