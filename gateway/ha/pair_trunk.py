"""Each box of a pair tells the other what its trunk can do; `lifeline status` shows both boxes' trunks.

Every HEARTBEAT_S (and at once on a change) the daemon writes "trunk:<own address>" into the pair's
replicated table (gateway.sip.pair_table, the same one the mode agreement uses) as
"<epoch> <state> <ready lines> <lines>": state is "ready" (a line can take a call), "no-line" (modems
configured, none ready: lost, unplugged, no network), "agent-down" (the trunk agent is not running) or
"none" (no modem configured). Kamailio routes by its own agent's answers (gateway/sip/pair_trunk.py);
this is what people see: a box that lost its modem shows it, on itself and on its peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

import structlog

from gateway.errors import RpcError
from gateway.ha.pair_mode import HEARTBEAT_S, PEER_SILENT_S, POLL_S, PairTableApi
from gateway.trunk.supervisor import AgentState, TrunkSupervisor

log = structlog.get_logger("pair")


def key(address: str) -> str:
    """A box's trunk item in the table."""
    return f"trunk:{address}"


@dataclass(frozen=True)
class TrunkRecord:
    """One box's trunk as it publishes it."""

    at: float
    state: str
    ready: int
    lines: int

    def encode(self) -> str:
        """The item's value: fields separated by spaces."""
        return f"{self.at:.3f} {self.state} {self.ready} {self.lines}"

    @classmethod
    def decode(cls, text: str | None) -> TrunkRecord | None:
        """A record from an item's value; None when absent or not one."""
        try:
            at, state, ready, lines = (text or "").split()
            return cls(float(at), state, int(ready), int(lines))
        except ValueError:
            return None

    def view(self) -> dict[str, Any]:
        """As `lifeline status --json` shows it."""
        return {"state": self.state, "ready_lines": self.ready, "lines": self.lines}


def own_record(trunk: TrunkSupervisor | None) -> TrunkRecord:
    """This box's trunk now, from the agent's last status report."""
    if trunk is None:
        return TrunkRecord(time.time(), "none", 0, 0)
    lines = len(trunk.config.trunk.modems)
    if trunk.state is not AgentState.RUNNING:
        return TrunkRecord(time.time(), "agent-down", 0, lines)
    modems = trunk.last_status.get("modems") or []
    ready = sum(1 for modem in modems if modem.get("state") == "ready")
    return TrunkRecord(time.time(), "ready" if ready else "no-line", ready, lines)


class PairTrunkState:
    """Publishes this box's trunk record and reads the peer's."""

    def __init__(self, own: str, peer: str, trunk: TrunkSupervisor | None) -> None:
        self.own, self.peer_address, self.trunk = own, peer, trunk
        self.peer: TrunkRecord | None = None
        self._heard: float | None = None  # monotonic, when the peer's latest record first showed here
        self._published: tuple[TrunkRecord, float] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self, table: PairTableApi) -> None:
        """Begin publishing and reading."""
        self._task = asyncio.create_task(self._run(table), name="pair-trunk")

    async def stop(self) -> None:
        """Stop the loop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self, table: PairTableApi) -> None:
        while True:
            try:
                await self.step(table)
            except RpcError as err:  # Kamailio restarting: the next round asks again
                log.debug("pair table not reachable", error=str(err))
            await asyncio.sleep(POLL_S)

    async def step(self, table: PairTableApi) -> None:
        """One round: read the peer's record, publish ours when it changed or is due."""
        peer = TrunkRecord.decode((await table.read()).get(key(self.peer_address)))
        if peer is not None and (self.peer is None or peer.at != self.peer.at):
            self._heard = time.monotonic()
        self.peer = peer
        record, last = own_record(self.trunk), self._published
        same = last is not None and last[0].encode().split()[1:] == record.encode().split()[1:]
        if same and last is not None and time.monotonic() - last[1] < HEARTBEAT_S:
            return
        if last is None or not same:
            log.info("pair trunk published", state=record.state, ready=record.ready, lines=record.lines)
        await table.write(key(self.own), record.encode())
        self._published = (record, time.monotonic())

    def status(self) -> dict[str, Any]:
        """Both boxes' trunks for `lifeline status`: the peer's as last heard, stale once it falls silent."""
        own = own_record(self.trunk).view()
        heard = None if self._heard is None else round(time.monotonic() - self._heard, 1)
        peer = None
        if self.peer is not None:
            peer = self.peer.view() | {"heard_s": heard, "current": heard is not None and heard < PEER_SILENT_S}
        return {"this_box": own, "peer": peer}
