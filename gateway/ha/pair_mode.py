"""The pair agrees on the mode: the active box decides, the standby follows; an override holds for both.

Each daemon writes its box's record into Kamailio's replicated table (gateway.sip.pair_table) every
HEARTBEAT_S, and reads the peer's every POLL_S:
- The active box (keepalived MASTER) decides from its own probes and its override, as a single box does.
- The standby (or a box in fault) follows the mode the active box published, not its own probes. When
  it becomes active it starts from that mode (the branch's), then its own probes take over.
- An override typed on either box holds for both: each record carries its override and when it was
  set; the newer one wins on both boxes (last writer wins, by the boxes' clocks).
- The peer's records also say whether it is alive (heard_s: since its last record came) and how late
  its records come (lag_ms: from its clock at writing to ours at reading, at POLL_S resolution).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from gateway.core.mode import Mode, ModeController, Override
from gateway.errors import RpcError

log = structlog.get_logger("pair")

POLL_S = 0.5
HEARTBEAT_S = 1.0
PEER_SILENT_S = 3 * HEARTBEAT_S  # no record for this long: the peer (or the replication) is down
LINK_POLL_S = 5.0


class PairTableApi(Protocol):
    """The replicated table (gateway.sip.pair_table.PairTable)."""

    async def read(self) -> dict[str, str]:
        """Every item."""

    async def write(self, key: str, value: str) -> None:
        """Set an item (and send it to the peer)."""

    async def peer_link(self, peer: str) -> str | None:
        """How the replication sees the peer."""


@dataclass(frozen=True)
class BoxRecord:
    """One box's part as it publishes it."""

    at: float
    role: str
    mode: Mode
    override: Override
    override_at: float

    def encode(self) -> str:
        """The item's value: fields separated by spaces."""
        return f"{self.at:.3f} {self.role} {self.mode.value} {self.override.value} {self.override_at!r}"

    @classmethod
    def decode(cls, text: str | None) -> BoxRecord | None:
        """A record from an item's value; None when absent or not one."""
        try:
            at, role, mode, override, override_at = (text or "").split()
            return cls(float(at), role, Mode(mode), Override(override), float(override_at))
        except ValueError:
            return None


def key(address: str) -> str:
    """A box's item in the table."""
    return f"box:{address}"


class PairModeSync:
    """Publishes this box's record, follows the active peer's mode, and takes the newer override."""

    def __init__(self, mode: ModeController, own: str, peer: str, role: Callable[[], str]) -> None:
        self.mode = mode
        self.own, self.peer_address = own, peer
        self.role = role
        self.table: PairTableApi | None = None
        self.peer: BoxRecord | None = None
        self._heard: float | None = None  # monotonic, when the peer's latest record first showed here
        self._lag: float | None = None
        self._published: tuple[BoxRecord, float] | None = None  # the last record written, and when (monotonic)
        self._link: str | None = None
        self._link_at = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self, table: PairTableApi) -> None:
        """Begin publishing and following."""
        self.table = table
        self._task = asyncio.create_task(self._run(), name="pair-mode")

    async def stop(self) -> None:
        """Stop the loop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self.step()
            except RpcError as err:  # Kamailio restarting: the next round asks again
                log.debug("pair table not reachable", error=str(err))
            await asyncio.sleep(POLL_S)

    async def step(self) -> None:
        """One round: read the peer's record, agree on override and mode, publish ours."""
        assert self.table is not None
        items = await self.table.read()
        peer = BoxRecord.decode(items.get(key(self.peer_address)))
        # Heard when its record changes: the first one read may be old (a dead peer's, kept by the table).
        if peer is not None and self.peer is not None and peer.at != self.peer.at:
            self._heard, self._lag = time.monotonic(), max(0.0, time.time() - peer.at)
        self.peer = peer
        status = self.mode.status()
        if peer is not None and peer.override_at > status.override_at:
            # Typed on the peer after the last one here: it holds here too (its time kept, so no echo).
            reason = f"override set on the pair's other box {self.peer_address}"
            await self.mode.set_override(peer.override, reason, at=peer.override_at)
        role = self.role()
        if role == "active":
            await self.mode.follow(None, "this box is the pair's active box: it decides")
        elif peer is not None and peer.role == "active":
            await self.mode.follow(peer.mode, f"following the pair's active box {self.peer_address}")
        # else (both standby at start, the peer in fault): keep what was followed last, if anything.
        await self._publish(role)
        if time.monotonic() - self._link_at >= LINK_POLL_S:
            self._link, self._link_at = await self.table.peer_link(self.peer_address), time.monotonic()

    async def _publish(self, role: str) -> None:
        assert self.table is not None
        status = self.mode.status()
        record = BoxRecord(time.time(), role, status.mode, status.override, status.override_at)
        last = self._published
        same = last is not None and last[0].encode().split()[1:] == record.encode().split()[1:]
        if same and last is not None and time.monotonic() - last[1] < HEARTBEAT_S:
            return
        await self.table.write(key(self.own), record.encode())
        self._published = (record, time.monotonic())

    def status(self) -> dict[str, Any]:
        """Peer health, replication lag and who decides the mode, for `lifeline status` and the doctor."""
        heard = None if self._heard is None else round(time.monotonic() - self._heard, 1)
        peer = self.peer
        following = self.mode.status().following
        return {
            "peer_health": {
                "up": heard is not None and heard < PEER_SILENT_S,
                "heard_s": heard,
                "lag_ms": None if self._lag is None else round(self._lag * 1000),
                "role": peer.role if peer is not None else None,
                "mode": peer.mode.value if peer is not None else None,
                "replication": self._link,  # the peer in this Kamailio's DMQ node list
            },
            "mode_agreement": {
                "decides": "peer" if following is not None else "this box",
                "following": following.value if following is not None else None,
            },
        }


def peer_words(peer: dict[str, Any]) -> str:
    """The peer's health in words: heard from (its records through the replication), how late, its part."""
    link = peer.get("replication") or "unknown"
    if peer.get("heard_s") is None:
        return f"NOT HEARD (nothing replicated from it yet; DMQ link {link})"
    health, says = ("up", "it is") if peer.get("up") else ("SILENT", "it last said it was")
    return (
        f"{health}: heard {peer['heard_s']:.1f} s ago, replication lag {peer['lag_ms']} ms, "
        f"DMQ link {link}; {says} {peer['role']} in {peer['mode']}"
    )


def agreement_words(agreement: dict[str, Any]) -> str:
    """Who decides the mode, in words."""
    following = agreement.get("following")
    if following is not None:
        return f"following the active box ({following})"
    return "decided by this box (its probes and override); the peer follows"
