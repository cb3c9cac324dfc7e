"""`lifeline ha check|key`: may this box hold the shared address (as keepalived asks); the pair's key."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gateway.config import Config
from gateway.errors import HaError
from gateway.ha.check import problems
from gateway.ha.key import write_new_key
from gateway.ha.pair_mode import agreement_words, peer_words


def add_parser(sub: Any) -> None:
    """Register `lifeline ha` on the main parser's subcommands."""
    ha = sub.add_parser("ha", help="pair mode ([ha]): this box's health as keepalived sees it")
    ha_sub = ha.add_subparsers(dest="ha_command", required=True)
    ha_sub.add_parser("check", help="exit 0 when Kamailio answers and the store is writable, 1 (and why) if not")
    key = ha_sub.add_parser("key", help="make the pair's shared key (0600; never overwrites one): copy it to the peer")
    key.add_argument("file", type=Path, help="where to write it, e.g. /etc/lifeline/pair.key (then ha.key_file)")


def make_key(args: argparse.Namespace) -> int:
    """`lifeline ha key FILE`: a new random pair key, written 0600 and never printed."""
    try:
        write_new_key(args.file)
    except HaError as err:
        print(f"lifeline: {err}", file=sys.stderr)
        return 1
    print(
        f"new pair key written to {args.file} (mode 0600); copy it to the other box (scp) and set ha.key_file on both"
    )
    return 0


def run(args: argparse.Namespace, config: Config) -> int:
    """Run the check for this config's Kamailio and store."""
    found = problems(config.run_dir / "kamailio-rpc.sock", config.db_path)
    for problem in found:
        print(f"lifeline ha check: {problem}", file=sys.stderr)
    if not found:
        print("ok: Kamailio answers and the store is writable")
    return 1 if found else 0


def status_lines(ha: dict[str, Any] | None) -> list[str]:
    """The pair's lines in `lifeline status`: this box's role, its peer's health, who decides the mode."""
    if ha is None:
        return []
    if ha["role"] == "off":
        return ["pair:          off (single box)"]
    keepalived = ha.get("keepalived") or {}
    running = "" if keepalived.get("running") else ", keepalived NOT RUNNING"
    lines = [f"pair:          {ha['role']}, shared address {ha['virtual_ip']}, peer {ha['peer']}{running}"]
    peer, agreement = ha.get("peer_health"), ha.get("mode_agreement")
    if peer is not None:
        lines.append(f"pair peer:     {peer_words(peer)}")
    if agreement is not None:
        lines.append(f"pair mode:     {agreement_words(agreement)}")
    trunks = ha.get("trunks")
    if trunks is not None:
        lines.append(f"pair trunks:   {trunks_words(trunks)}")
    return lines


_TRUNK_STATES = {
    "no-line": "NO LINE READY (modem lost, unplugged or without network)",
    "agent-down": "TRUNK AGENT DOWN",
    "none": "no modem",
}


def _trunk_words(trunk: dict[str, Any]) -> str:
    if trunk.get("state") == "ready":
        return f"{trunk.get('ready_lines')} of {trunk.get('lines')} lines ready"
    return _TRUNK_STATES.get(str(trunk.get("state")), str(trunk.get("state")))


def trunks_words(trunks: dict[str, Any]) -> str:
    """Both boxes' trunks in a line: a call either box's phones make may leave through either's modem."""
    peer = trunks.get("peer")
    if peer is None:
        heard = "not heard yet"
    elif peer.get("current"):
        heard = _trunk_words(peer)
    else:
        heard = f"{_trunk_words(peer)} (SILENT: last heard {peer.get('heard_s')} s ago)"
    return f"this box {_trunk_words(trunks.get('this_box') or {})}; peer {heard}"
