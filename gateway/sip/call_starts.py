"""Starts of calls answered on either box of a pair: what the other box needs to write the call's record itself.

A call answered through box A whose BYE goes through box B (A died meanwhile) would have no record if A
never came back: Kamailio notes the call's start as its first answer passes (route[HA_CDR_ANSWER]), DMQ
copies the note to the peer, and the peer's capture makes the record from it (gateway/cdr/pair.py).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import RpcError
from gateway.sip.rpc import KamailioRpc, item_value

TABLE = "cdr_starts"
VERSION = "1"  # the value's first word: a box reading a note it does not know skips it

# After the pair's other tables (gateway/sip/dmq.py): an item per answered call, copied to the peer.
TABLE_FRAGMENT = f"""
# Calls answered here (Call-ID -> their start, route[HA_CDR_ANSWER]): if the BYE goes through the
# other box and this one never returns, that box writes the record (gateway/sip/call_starts.py).
modparam("htable", "htable", "{TABLE}=>size=8;autoexpire=86400;dmqreplicate=1;")"""

# Called from onreply_route[CDR_REPLY] on a 2xx. The request's P-Asserted-Identity (the reply may
# carry the callee's); the first answer only (a retransmitted 200 passes here too). Free text is
# base64 (display names have spaces); a missing value becomes "" (the transformation's null).
ROUTE_CALL = "\n\t\troute(HA_CDR_ANSWER);"
ROUTE_FRAGMENT = f"""
# What the pair's other box needs to write this call's record (gateway/sip/call_starts.py).
route[HA_CDR_ANSWER] {{
	if ($sht({TABLE}=>$ci) != $null) return;
	$var(cdr_note) = "{VERSION} " + $TV(Sn) + " " + $rs + " " + $(avp(cdr_start){{s.encode.base64}})
		+ " " + $(avp(cdr_mode){{s.encode.base64}}) + " " + $(avp(cdr_from_trunk){{s.encode.base64}})
		+ " " + $(ft{{s.encode.base64}}) + " " + $(fU{{s.encode.base64}}) + " " + $(tU{{s.encode.base64}})
		+ " " + $(fn{{s.encode.base64}}) + " " + $(T_req($ai){{s.encode.base64}})
		+ " " + $(avp(cdr_trunk){{s.encode.base64}});
	$sht({TABLE}=>$ci) = $var(cdr_note);
}}
"""


@dataclass(frozen=True)
class CallStart:
    """An answered call as the box it went through saw it: the fields of its acc events (gateway/sip/accounting)."""

    answer: float  # wall clock of the first 2xx, at the box that answered it
    sip_code: int
    start: float  # $avp(cdr_start): the INVITE's arrival, as that box's acc events carry it
    mode: str
    from_trunk: bool  # the INVITE came from the trunk agent with its details (route[AUTH])
    from_tag: str
    src_user: str
    dst_user: str
    src_name: str
    pai: str
    trunk: str


def _text(word: str) -> str:
    return base64.b64decode(word, validate=True).decode("utf-8", errors="replace")


def parse_call_start(value: str) -> CallStart | None:
    """Read an item of the table as route[HA_CDR_ANSWER] writes it; None for anything else."""
    words = value.split(" ")
    if len(words) != 12 or words[0] != VERSION:
        return None
    try:
        answer, code = float(words[1]), int(words[2])
        start, mode, from_trunk, tag, src, dst, name, pai, trunk = (_text(w) for w in words[3:])
        return CallStart(
            answer, code, float(start), mode or "survival", from_trunk == "1", tag, src, dst, name, pai, trunk
        )
    except (ValueError, binascii.Error):
        return None


def call_starts(rpc_socket: Path) -> Callable[[str], CallStart | None]:
    """A lookup of a call's start in this box's Kamailio (which has the peer's too); None when not known."""
    rpc = KamailioRpc(rpc_socket, timeout=2.0)

    def lookup(call_id: str) -> CallStart | None:
        try:
            value = rpc.call_blocking("htable.get", TABLE, call_id)
        except RpcError:
            return None  # no such item (or Kamailio restarting): the record stays with the box that has it
        return parse_call_start(str(item_value(value) or ""))

    return lookup
