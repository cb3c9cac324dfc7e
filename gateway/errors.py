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


class DnsLookupError(SipError):
    """cloud.sbc's SRV name could not be looked up (no answer in time, no DNS server, a server failure)."""


class DaemonUnreachableError(LifelineError):
    """No daemon listens on the API socket (none there, or the connection refused): the CLI may use the store."""


class DaemonRequestError(LifelineError):
    """The daemon is there but failed the request (error status, timeout, no JSON): nothing is written around it."""


class BackupError(LifelineError):
    """A backup could not be made, read or restored; nothing was written around it."""


class HardwareError(LifelineError):
    """The GPIO (LEDs, button, bypass relay) could not be set up."""


class HaError(LifelineError):
    """Pair mode ([ha]) cannot run: keepalived, its config, or this box's address."""


class UserAgentError(LifelineError):
    """pjsua2 (the SIP user agent library) refused an operation, or was asked to break its lifecycle rules."""


class CallGoneError(UserAgentError):
    """The call has ended (or never started): its pjsua2 object may no longer be touched."""
