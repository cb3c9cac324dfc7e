"""The pair as the daemon runs it ([ha]): keepalived for the shared address, and the mode agreed with the peer."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.config import Config
from gateway.core.mode import ModeController
from gateway.ha.pair_mode import PairModeSync, PairTableApi
from gateway.ha.pair_trunk import PairTrunkState
from gateway.ha.render import own_lan_ip
from gateway.ha.supervisor import KeepalivedSupervisor
from gateway.store import Store
from gateway.trunk.supervisor import TrunkSupervisor


class Pair:
    """keepalived (this box's role) and the mode agreement; both idle for a single box."""

    def __init__(
        self, config: Config, store: Store, mode: ModeController, trunk: TrunkSupervisor | None = None
    ) -> None:
        self.config = config
        self.trunk = trunk  # this box's, if it has modems: its state goes to the peer (gateway.ha.pair_trunk)
        self.trunks: PairTrunkState | None = None
        self.keepalived = KeepalivedSupervisor(config, store)
        self.mode = mode
        self.sync: PairModeSync | None = None

    async def start(self, table: PairTableApi) -> None:
        """Start keepalived, then publish and follow the mode through table (Kamailio's, replicated)."""
        await self.keepalived.start()
        ha = self.config.ha
        if not ha.enabled or ha.peer is None:
            return
        own = await asyncio.to_thread(own_lan_ip, self.config)
        self.sync = PairModeSync(self.mode, own, ha.peer, lambda: self.keepalived.role)
        self.sync.start(table)
        self.trunks = PairTrunkState(own, ha.peer, self.trunk)
        self.trunks.start(table)

    async def stop(self) -> None:
        """Stop following, then keepalived (the peer takes the address)."""
        if self.sync is not None:
            await self.sync.stop()
        if self.trunks is not None:
            await self.trunks.stop()
        await self.keepalived.stop()

    def status(self) -> dict[str, Any]:
        """keepalived's part, the peer's health, the replication's lag and who decides the mode."""
        status = self.keepalived.status()
        if self.sync is not None:
            status.update(self.sync.status())
        if self.trunks is not None:
            status["trunks"] = self.trunks.status()
        return status
