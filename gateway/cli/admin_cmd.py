"""`lifeline admin password [--viewer]`: a new status page password, printed once; only its hash is kept."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from gateway.config import Config
from gateway.hw.admin import hash_password, new_password
from gateway.store import Store
from gateway.web.ui.sessions import PASSWORD_KEYS, Role


def add_parser(sub: Any) -> None:
    """Register `lifeline admin …` on the main parser's subcommands."""
    admin = sub.add_parser("admin", help="the passwords of the status page (https://<box>:8443/ui/)")
    asub = admin.add_subparsers(dest="admin_command", required=True)
    password = asub.add_parser(
        "password",
        help="make a new admin password and print it (shown this once; replaces the old one at the next login)",
    )
    password.add_argument(
        "--viewer",
        action="store_true",
        help="the read-only password instead (office IT: sees everything and may download call records, "
        "but cannot force the mode, run a drill or sync the mirror)",
    )
    password.add_argument("--remove", action="store_true", help="with --viewer: remove the read-only password")


def set_password(store: Store, by: str, role: Role = Role.ADMIN) -> str:
    """Make a new password of role, store its scrypt hash (the admin's is the one the button's reset writes)."""
    password = new_password()
    store.set_state(PASSWORD_KEYS[role], {"hash": hash_password(password), "set_at": time.time(), "by": by})
    store.add_event("admin", f"{role.value} password set ({by})")
    return password


def run(args: argparse.Namespace, config: Config) -> int:
    """Run `lifeline admin password [--viewer [--remove]]`."""
    role = Role.VIEWER if args.viewer else Role.ADMIN
    if args.remove and role is not Role.VIEWER:
        print("lifeline: --remove only removes the read-only password (with --viewer)", file=sys.stderr)
        return 2
    # Straight into the store, as `extensions import` does: the daemon reads the hashes at each login.
    store = Store(config.db_path)
    try:
        if args.remove:
            store.set_state(PASSWORD_KEYS[role], None)
            store.add_event("admin", "viewer password removed (lifeline admin password --viewer --remove)")
            print("the read-only password is removed (sessions it opened end when idle or at a restart)")
            return 0
        flag = " --viewer" if role is Role.VIEWER else ""
        password = set_password(store, f"lifeline admin password{flag}", role)
    finally:
        store.close()
    kind = "read-only (viewer)" if role is Role.VIEWER else "admin"
    print(f"the status page's {kind} password (shown this once; only its hash is kept):")
    print(password)
    return 0
