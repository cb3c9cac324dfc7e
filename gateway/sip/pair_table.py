"""The pair's mode table in Kamailio (htable pair_mode), replicated to the peer by DMQ; the peer's DMQ link.

Kamailio 5.6's htable.sets over RPC replicates to the DMQ peers like an assignment in the config does
when the table has dmqreplicate=1 (htable.c, htable_rpc_sets), and a box that starts asks the peer
for every item (dmq_init_sync): the daemons need no channel of their own for the mode.
"""

from __future__ import annotations

from typing import Any

from gateway.sip.rpc import KamailioRpc

TABLE = "pair_mode"  # kamailio.cfg.tmpl


class PairTable:
    """Reads and writes the pair_mode items of this box's Kamailio; asks how its DMQ sees the peer."""

    def __init__(self, rpc: KamailioRpc) -> None:
        self.rpc = rpc

    async def read(self) -> dict[str, str]:
        """Every item of the table (this box's and what the peer's replication brought)."""
        items: dict[str, str] = {}
        for entry in await self.rpc.call("htable.dump", TABLE) or []:
            for slot in entry.get("slot") or []:
                items[str(slot["name"])] = str(slot["value"])
        return items

    async def write(self, key: str, value: str) -> None:
        """Set an item here; Kamailio sends it to the peer."""
        await self.rpc.call("htable.sets", TABLE, key, value)

    async def peer_link(self, peer: str) -> str | None:
        """The peer's state in this Kamailio's DMQ node list (active, pending, ...), None when not listed."""
        nodes: Any = await self.rpc.call("dmq.list_nodes")
        states = [
            str(node.get("status"))
            for node in nodes or []
            if isinstance(node, dict) and not node.get("local") and peer in (node.get("resolved_ip"), node.get("host"))
        ]
        # The peer is listed once as the notification address and once as the node it announced.
        return "active" if "active" in states else (states[0] if states else None)
