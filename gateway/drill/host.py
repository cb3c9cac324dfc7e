"""What a drill needs of the daemon: the DrillHost protocol gateway.app.App satisfies."""

from __future__ import annotations

from typing import Protocol

from gateway.cdr.service import CdrService
from gateway.config import Config
from gateway.core.alerts import AlertQueue
from gateway.core.mode import ModeController
from gateway.sip.supervisor import KamailioSupervisor
from gateway.store import Store


class DrillHost(Protocol):
    """What the drill needs of the daemon (gateway.app.App)."""

    @property
    def config(self) -> Config:
        """The configuration."""
        ...

    @property
    def store(self) -> Store:
        """The store: extensions (HA1), call records, events."""
        ...

    @property
    def mode(self) -> ModeController:
        """The mode controller the drill overrides."""
        ...

    @property
    def kamailio(self) -> KamailioSupervisor | None:
        """Kamailio, once started."""
        ...

    @property
    def cdr(self) -> CdrService:
        """Call records and their sinks."""
        ...

    @property
    def alerts(self) -> AlertQueue:
        """Where a failed drill is announced."""
        ...

    @property
    def port(self) -> int:
        """Kamailio's SIP port."""
        ...
