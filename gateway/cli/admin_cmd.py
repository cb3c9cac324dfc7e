"""`lifeline admin password [--viewer]`: a new status page password, printed once; only its hash is kept.

Through the daemon when it runs (it is the only writer of the store then); into the store only when none is there.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from gateway.cli.client import request
from gateway.config import Config
from gateway.errors import DaemonRequestError, DaemonUnreachableError
from gateway.store import Store
from gateway.web.ui.passwords import remove_viewer_password, set_password
from gateway.web.ui.sessions import Role

__all__ = ["add_parser", "run", "set_password"]  # set_password: the tests set passwords as the CLI does


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


def _through_daemon(config: Config, method: str, role: Role) -> Any:
    """One call to the daemon's password route; DaemonUnreachableError only when no daemon is there."""
    try:
        return asyncio.run(request(config.api_socket, method, f"/api/v1/passwords/{role.value}"))
    except DaemonRequestError as err:
        raise DaemonRequestError(f"{err}; not written behind the running daemon") from err


def _offline(config: Config, role: Role, remove: bool, by: str) -> str | None:
    """The store written by the CLI itself: only when no daemon runs (it is the only writer then)."""
    store = Store(config.db_path)
    try:
        if remove:
            remove_viewer_password(store, by)
            return None
        return set_password(store, by, role)
    finally:
        store.close()


def run(args: argparse.Namespace, config: Config) -> int:
    """Run `lifeline admin password [--viewer [--remove]]`."""
    role = Role.VIEWER if args.viewer else Role.ADMIN
    if args.remove and role is not Role.VIEWER:
        print("lifeline: --remove only removes the read-only password (with --viewer)", file=sys.stderr)
        return 2
    flag = " --viewer" if role is Role.VIEWER else ""
    by = f"lifeline admin password{flag}{' --remove' if args.remove else ''}, no daemon running"
    try:
        reply = _through_daemon(config, "DELETE" if args.remove else "PUT", role)
        password = None if args.remove else str(reply["password"])
    except DaemonUnreachableError:
        password = _offline(config, role, args.remove, by)
    if password is None:
        print("the read-only password is removed (the sessions it opened have ended)")
        return 0
    kind = "read-only (viewer)" if role is Role.VIEWER else "admin"
    print(f"the status page's {kind} password (shown this once; only its hash is kept):")
    print(password)
    return 0
