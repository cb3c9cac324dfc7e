"""systemd service notifications (READY, WATCHDOG, STOPPING) over $NOTIFY_SOCKET.

The protocol is one datagram of `KEY=value` lines to a unix socket (sd_notify(3); systemd
documents it as a stable interface meant to be reimplemented). Checked on PyPI: `sdnotify`
(last release 2017, swallows every error with a bare except) and `systemd-python` / `cysystemd`
(C bindings to libsystemd: a compiler and libsystemd-dev on the Pi, or a 6 MB wheel bundling a
second libsystemd, and no 32-bit ARM wheel) - too much or too little for thirty lines.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Protocol

import structlog

log = structlog.get_logger("watchdog")


class Notifier(Protocol):
    """Where service state notifications go."""

    def notify(self, message: str) -> bool:
        """Send one notification; False when nobody listens."""
        ...


def _address(raw: str) -> str:
    if raw.startswith("@"):
        # Abstract namespace socket: the name starts with a NUL byte.
        return "\0" + raw[1:]
    if not raw.startswith("/"):
        raise ValueError(f"NOTIFY_SOCKET must be an absolute path or start with @, not {raw!r}")
    return raw


class SystemdNotifier:
    """Sends sd_notify datagrams to $NOTIFY_SOCKET; a no-op when the service manager set none."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        self.address = _address(raw) if raw else None
        self._sock: socket.socket | None = None

    def notify(self, message: str) -> bool:
        """Send `message` (e.g. "READY=1"); errors are logged, never raised: the daemon goes on."""
        if self.address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message.encode(), self.address)
        except OSError as err:
            log.warning("sd_notify failed", socket=self.address.replace("\0", "@"), error=str(err))
            return False
        return True

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval(environ: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """How often to send WATCHDOG=1 (half of WatchdogSec), or None when no watchdog is armed for us."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    owner = env.get("WATCHDOG_PID")
    if owner and int(owner) != (os.getpid() if pid is None else pid):
        return None
    value = int(usec)
    if value <= 0:
        raise ValueError(f"WATCHDOG_USEC must be a positive number of microseconds, not {usec!r}")
    return value / 1_000_000 / 2
