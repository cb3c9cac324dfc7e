"""Pseudo-terminal pairs that stand in for a USB modem's serial ports."""

from __future__ import annotations

import contextlib
import os
import tty


class PtyPort:
    """One pty pair: the simulator owns the master, the driver opens the slave by its name."""

    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        # Raw from birth: no echo, no CR/LF translation, so bytes cross exactly as on a USB tty.
        tty.setraw(self._slave)
        os.set_blocking(self.master, False)
        self.name = os.ttyname(self._slave)
        self.closed = False

    def write(self, data: bytes) -> int:
        """Write what fits without blocking; returns the bytes written (0 when the buffer is full)."""
        try:
            return os.write(self.master, data)
        except BlockingIOError:
            return 0

    def read(self) -> bytes:
        """What the driver wrote, or b'' when nothing is there."""
        try:
            return os.read(self.master, 65536)
        except (BlockingIOError, OSError):
            return b""

    def close(self) -> None:
        """Make the port vanish: the driver's reads fail from now on."""
        if self.closed:
            return
        self.closed = True
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
