"""The small tree of errors Lifeline raises; library errors are translated into these at the boundary."""

from __future__ import annotations


class LifelineError(Exception):
    """Base of every error Lifeline raises on purpose."""


class ConfigError(LifelineError):
    """The configuration file is missing, unreadable or invalid."""


class StoreError(LifelineError):
    """The SQLite store could not be opened or written."""


class ImportRowsError(LifelineError):
    """An extensions file has bad rows; nothing was imported."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} bad row(s); nothing was imported:\n" + "\n".join(problems))
        self.problems = problems


class SipError(LifelineError):
    """Kamailio could not be configured, started or reached."""


class RpcError(SipError):
    """A JSON-RPC call to Kamailio failed or timed out."""


class DaemonUnreachableError(LifelineError):
    """The CLI could not reach the running daemon's API."""


class HardwareError(LifelineError):
    """The GPIO (LEDs, button, bypass relay) could not be set up."""
