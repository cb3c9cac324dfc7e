"""Errors of the trunk (modems, calls, policy), part of the LifelineError tree."""

from __future__ import annotations

from gateway.errors import LifelineError


class TrunkError(LifelineError):
    """A modem could not be reached, configured or made to carry a call."""


class PortGoneError(TrunkError):
    """The modem's port went away (unplugged, reset, brown-out)."""


class CommandTimeoutError(TrunkError):
    """The modem did not answer a command in time."""


class CommandError(TrunkError):
    """The modem answered a command with an error."""

    def __init__(self, command: str, final: str) -> None:
        super().__init__(f"{command}: {final}")
        self.command = command
        self.final = final
