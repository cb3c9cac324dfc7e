"""Ends of calls the pair's other box saw: the BYE of a call set up here before a failover went there."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from gateway.errors import RpcError
from gateway.sip.call_starts import CallStart, call_starts
from gateway.sip.rpc import KamailioRpc, item_value

TABLE = "cdr_ends"  # kamailio.cfg.tmpl: written as a recorded BYE passes, replicated to the peer by DMQ

CallEnd = tuple[float, str]  # (wall-clock end, From tag of the BYE)


def call_ends(rpc_socket: Path) -> Callable[[str], CallEnd | None]:
    """A lookup of a call's end in this box's Kamailio (which has the peer's too); None when not known."""
    rpc = KamailioRpc(rpc_socket, timeout=2.0)

    def lookup(call_id: str) -> CallEnd | None:
        try:
            value = rpc.call_blocking("htable.get", TABLE, call_id)
        except RpcError:
            return None  # no such item (or Kamailio restarting): the next sweep asks again
        text = str(item_value(value) or "")
        when, _, tag = text.partition(" ")
        try:
            return float(when), tag
        except ValueError:
            return None

    return lookup


class PairCalls(NamedTuple):
    """What capture asks this box's Kamailio about the pair's calls: their ends and their starts."""

    end: Callable[[str], CallEnd | None]
    start: Callable[[str], CallStart | None]


def pair_calls(rpc_socket: Path) -> PairCalls:
    """Both lookups, through this box's Kamailio RPC socket."""
    return PairCalls(call_ends(rpc_socket), call_starts(rpc_socket))
