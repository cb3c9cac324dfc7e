"""`lifeline token create|list|revoke`: bearer tokens of the network API (through the daemon when it runs)."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import urllib.parse
from typing import Any

from gateway.cli.client import request
from gateway.config import Config
from gateway.errors import DaemonRequestError, DaemonUnreachableError, LifelineError
from gateway.store import Store
from gateway.web.routes import Scope
from gateway.web.tokens import TokenStore


def add_parser(sub: Any) -> None:
    """Register `lifeline token …` on the main parser's subcommands."""
    token = sub.add_parser("token", help="bearer tokens for the network API (vendors, monitoring)")
    tsub = token.add_subparsers(dest="token_command", required=True)
    create = tsub.add_parser("create", help="make a token and print its secret (shown this once only)")
    create.add_argument("--name", required=True, help="who or what uses it, e.g. vendor-noc")
    create.add_argument(
        "--scope",
        required=True,
        choices=[s.value for s in Scope],
        help="read: GET endpoints; webhook: the mirror webhook only; operate: read + mode, sync, test SMS; "
        "admin: everything, tokens too",
    )
    lst = tsub.add_parser("list", help="the tokens (never their secrets)")
    lst.add_argument("--json", action="store_true")
    revoke = tsub.add_parser("revoke", help="revoke a token at once")
    revoke.add_argument("id", help="the token's id, as `token list` shows it")


def _offline(config: Config, what: str, *args: Any) -> Any:
    """Run a TokenStore method on the store itself: only when no daemon runs (it is the only writer then)."""
    store = Store(config.db_path)
    try:
        return getattr(TokenStore(store), what)(*args)
    finally:
        store.close()


def _call(config: Config, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    try:
        return asyncio.run(request(config.api_socket, method, path, body))
    except DaemonRequestError as err:
        raise DaemonRequestError(f"{err}; not written behind the running daemon") from err


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "-"


def _list(args: argparse.Namespace, config: Config) -> int:
    try:
        tokens = _call(config, "GET", "/api/v1/tokens")["tokens"]
    except DaemonUnreachableError:
        tokens = [t.as_dict() for t in _offline(config, "tokens")]
    if args.json:
        print(json.dumps(tokens, indent=2))
        return 0
    print(f"{'id':12} {'scope':8} {'created':16} {'last used':16} {'from':15} {'revoked':16} name")
    for t in tokens:
        print(
            f"{t['id']:12} {t['scope']:8} {_when(t['created_at']):16} {_when(t['last_used_at']):16} "
            f"{t['last_used_from'] or '-':15} {_when(t['revoked_at']):16} {t['name']}"
        )
    print(f"{len(tokens)} token(s), {sum(1 for t in tokens if not t['revoked_at'])} in force")
    return 0


def run(args: argparse.Namespace, config: Config) -> int:
    """Run `lifeline token …`."""
    if args.token_command == "list":
        return _list(args, config)
    if args.token_command == "create":
        try:
            made = _call(config, "POST", "/api/v1/tokens", {"name": args.name, "scope": args.scope})
            token, secret = made["token"], made["secret"]
        except DaemonUnreachableError:
            try:
                found, secret = _offline(config, "create", args.name, Scope(args.scope), "the CLI (no daemon running)")
            except ValueError as err:
                raise LifelineError(str(err)) from err
            token = found.as_dict()
        print(f"token {token['id']} ({token['name']}, scope {token['scope']}) created; its secret, shown this once:")
        print(secret)
        return 0
    try:
        token = _call(config, "DELETE", f"/api/v1/tokens/{urllib.parse.quote(args.id, safe='')}")["token"]
    except DaemonUnreachableError:
        found = _offline(config, "revoke", args.id, "the CLI (no daemon running)")
        if found is None:
            raise LifelineError(f"no token {args.id!r}") from None
        token = found.as_dict()
    print(f"token {token['id']} ({token['name']}) revoked")
    return 0


def status_lines(api: dict[str, Any] | None) -> list[str]:
    """The network API's part of `lifeline status`."""
    if not api:
        return []
    if not api.get("enabled"):
        return ["network api:   off ([api] enabled = false)"]
    if api.get("error"):
        return [f"network api:   NOT SERVING: {api['error']}"]
    lines = [f"network api:   {api['url']} (certificate {api['certificate']})"]
    if api.get("socket_only_routes"):
        lines.append(f"               not in the route table, socket only: {', '.join(api['socket_only_routes'])}")
    return lines
