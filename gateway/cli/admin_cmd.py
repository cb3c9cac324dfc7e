"""`lifeline admin password`: a new admin password for the status page, printed once; only its hash is kept."""

from __future__ import annotations

import argparse
import time
from typing import Any

from gateway.config import Config
from gateway.hw.admin import STATE_KEY, hash_password, new_password
from gateway.store import Store


def add_parser(sub: Any) -> None:
    """Register `lifeline admin …` on the main parser's subcommands."""
    admin = sub.add_parser("admin", help="the admin password of the status page (https://<box>:8443/ui/)")
    asub = admin.add_subparsers(dest="admin_command", required=True)
    asub.add_parser(
        "password",
        help="make a new admin password and print it (shown this once; replaces the old one at the next login)",
    )


def set_password(store: Store, by: str) -> str:
    """Make a new admin password, store its scrypt hash (the one the front-panel button's reset writes); return it."""
    password = new_password()
    store.set_state(STATE_KEY, {"hash": hash_password(password), "set_at": time.time(), "by": by})
    store.add_event("admin", f"admin password set ({by})")
    return password


def run(args: argparse.Namespace, config: Config) -> int:
    """Run `lifeline admin password`."""
    # Straight into the store, as `extensions import` does: the daemon reads the hash at each login.
    store = Store(config.db_path)
    try:
        password = set_password(store, "lifeline admin password")
    finally:
        store.close()
    print("the status page's admin password (shown this once; only its hash is kept):")
    print(password)
    return 0
