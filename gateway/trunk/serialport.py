"""A serial port on the asyncio loop: pyserial opens and configures it, the loop's fd reader reads it."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable

import serial

from gateway.trunk.errors import PortGoneError, TrunkError


class SerialPort:
    """Non-blocking reads through loop.add_reader; writes are small and go straight to the fd."""

    def __init__(self, path: str, on_data: Callable[[bytes], None], on_gone: Callable[[str], None]) -> None:
        self.path = path
        self._on_data = on_data
        self._on_gone = on_gone
        self._serial: serial.Serial | None = None
        self._fd = -1
        self.gone = False

    def open(self) -> None:
        """Open and configure the port (raw, 115200 8N1, exclusive) and start reading."""
        try:
            # Baud rate is ignored by USB CDC/ACM and option-driver ttys but set for real UARTs.
            self._serial = serial.Serial(self.path, 115200, timeout=0, exclusive=True)
        except (serial.SerialException, OSError) as err:
            raise PortGoneError(f"cannot open {self.path}: {err}") from err
        self._fd = self._serial.fileno()
        os.set_blocking(self._fd, False)
        asyncio.get_running_loop().add_reader(self._fd, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        except OSError as err:
            self._lost(f"read failed: {err}")
            return
        if not data:
            self._lost("end of file")
            return
        self._on_data(data)

    def _lost(self, why: str) -> None:
        if self.gone:
            return
        self.gone = True
        self._stop_reading()
        self._on_gone(why)

    def write(self, data: bytes) -> None:
        """Write all of data (the tty buffer takes a command or a frame at once)."""
        if self.gone or self._fd < 0:
            raise PortGoneError(f"{self.path} is gone")
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except BlockingIOError as err:
            raise TrunkError(f"{self.path}: output buffer full, {len(view)} bytes not written") from err
        except OSError as err:
            self._lost(f"write failed: {err}")
            raise PortGoneError(f"{self.path}: write failed: {err}") from err

    def write_some(self, data: bytes) -> int:
        """Write what fits now (audio: a frame that does not fit is dropped, not queued)."""
        if self.gone or self._fd < 0:
            return 0
        try:
            return os.write(self._fd, data)
        except BlockingIOError:
            return 0
        except OSError as err:
            self._lost(f"write failed: {err}")
            return 0

    def _stop_reading(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._fd)

    def close(self) -> None:
        """Stop reading and close the port."""
        self._stop_reading()
        if self._serial is not None:
            with contextlib.suppress(Exception):
                self._serial.close()
        self._serial = None
        self._fd = -1
