"""`lifeline firewall [--apply]`: the per-address TCP connection limits (nftables), printed or loaded.

Printing needs no privileges. `--apply` loads the ruleset with `nft -f -` as root: lifeline.service
runs it before the daemon starts (ExecStartPre=+…) and deletes the table when it stops.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from gateway.config import Config
from gateway.errors import LifelineError
from gateway.sip import firewall

NFT_FALLBACK = "/usr/sbin/nft"  # where Debian's nftables package puts it (root's PATH has it, a user's may not)
NFT_TIMEOUT_S = 30


def add_parser(sub: Any) -> None:
    """Register `lifeline firewall` on the main parser's subcommands."""
    fw = sub.add_parser(
        "firewall", help="the nftables per-address TCP connection limits: print them, or --apply (root)"
    )
    fw.add_argument(
        "--apply", action="store_true", help="load them with `nft -f -`: replaces table inet lifeline, nothing else"
    )
    # Also after the command; SUPPRESS keeps a --config given before it when this one is not given.
    fw.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="TOML config (as `lifeline --config`)")


def run(args: argparse.Namespace, config: Config) -> int:
    """Print the ruleset, or load it."""
    found = firewall.listeners(config)
    text = firewall.ruleset(config, found)
    for listener in firewall.unknown(found):
        print(
            f"lifeline: warning: {listener.name} has port 0 (a free port at each start): not limited",
            file=sys.stderr,
        )
    if not args.apply:
        sys.stdout.write(text)
        return 0
    apply(text)
    ports = ", ".join(f"{item.name} {item.port}" for item in found if item.port) or "no TCP listener"
    print(f"table {firewall.TABLE} loaded: at most {config.sip.tcp_per_source} TCP connections per address ({ports})")
    return 0


def apply(text: str) -> None:
    """Load text with `nft -f -` (one transaction: all of it or nothing)."""
    if os.geteuid() != 0:
        raise LifelineError(
            "firewall --apply: needs root (nft changes the kernel's ruleset); "
            "run it with sudo, or without --apply to print the ruleset"
        )
    nft = shutil.which("nft") or NFT_FALLBACK
    try:
        done = subprocess.run([nft, "-f", "-"], input=text, capture_output=True, text=True, timeout=NFT_TIMEOUT_S)
    except FileNotFoundError as err:
        raise LifelineError(f"firewall --apply: {nft} not found (install the nftables package)") from err
    except subprocess.TimeoutExpired as err:
        raise LifelineError(f"firewall --apply: nft did not finish within {NFT_TIMEOUT_S} s") from err
    if done.returncode != 0:
        raise LifelineError(f"firewall --apply: nft refused the ruleset: {done.stderr.strip() or done.returncode}")
