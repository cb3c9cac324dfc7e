"""`lifeline mirror sync|status`: the directory mirror from the command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from gateway.cli.client import request
from gateway.cli.progress import Meter, terminal
from gateway.config import Config
from gateway.errors import DaemonRequestError, DaemonUnreachableError
from gateway.mirror.build import build_source
from gateway.mirror.engine import SyncEngine, state_key
from gateway.mirror.errors import MirrorError
from gateway.mirror.records import SHORT_PASSWORD
from gateway.mirror.service import MirrorHealth, status_from_health
from gateway.store import Store

EXIT_ERROR = 1
POLL_S = 0.2
WAIT_MAX_S = 3600.0


def add_parser(sub: Any) -> None:
    """Register `lifeline mirror …` on the main parser's subcommands."""
    mirror = sub.add_parser("mirror", help="the cloud PBX directory mirror")
    msub = mirror.add_subparsers(dest="mirror_command", required=True)
    sync = msub.add_parser("sync", help="sync the directory now (through the daemon if it runs)")
    sync.add_argument("--full", action="store_true", help="fetch the whole directory, not just the changes")
    sync.add_argument("--allow-empty", action="store_true", help="accept an empty directory (deletes the mirror)")
    sync.add_argument("--json", action="store_true", help="print the sync's result as JSON (no progress bar)")
    status = msub.add_parser("status", help="age, counts and last error of the mirror")
    status.add_argument("--json", action="store_true")


def _ago(ts: float | None) -> str:
    if not ts:
        return "never"
    seconds = int(time.time() - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def status_lines(mirror: dict[str, Any] | None) -> list[str]:
    """The mirror's part of `lifeline status` as text."""
    if not mirror or not mirror.get("source"):
        return ["mirror:        no directory source configured ([mirror] source)"]
    where = mirror.get("url") or mirror.get("path") or ""
    stale = "  STALE: check the directory source" if mirror.get("stale") else ""
    lines = [
        f"mirror:        {mirror['source']} {where}, {mirror['health']}{stale}",
        f"               {mirror['extensions']} extensions, {mirror['groups']} groups, "
        f"last good sync {_ago(mirror.get('last_ok'))}",
    ]
    if mirror.get("last_error"):
        lines.append(f"               last error {_ago(mirror.get('last_error_at'))}: {mirror['last_error']}")
    if mirror.get("short_passwords"):
        lines.append(f"               {short_password_warning(mirror['short_passwords'])}")
    return lines


def short_password_warning(numbers: list[str]) -> str:
    """The warning about extensions mirrored with a short password (it names them, never a password)."""
    shown = ", ".join(numbers[:10]) + (f" and {len(numbers) - 10} more" if len(numbers) > 10 else "")
    return (
        f"warning: {len(numbers)} extension(s) have a password shorter than {SHORT_PASSWORD} characters "
        f"(mirrored: the cloud PBX sets the policy): {shown}"
    )


def offline_status(config: Config, store: Store | None) -> dict[str, Any] | None:
    """The mirror's status from the store alone (no daemon running; None: no store yet)."""
    source = build_source(config)
    if source is None:
        return None
    health = (store.get_state(state_key(source.name), {}) if store is not None else None) or {}
    last_ok = health.get("last_ok")
    state = MirrorHealth.FRESH if last_ok and not health.get("last_error") else MirrorHealth.NEVER_SYNCED
    if health.get("last_error"):
        state = MirrorHealth.FAILING
    return status_from_health(
        health,
        source=source.name,
        describe=source.describe(),
        state=state.value,
        config=config.mirror,
        counts=store.count_by_source() if store is not None else {},
        age_s=round(time.time() - last_ok, 1) if last_ok else None,
    )


def _describe_result(result: dict[str, Any]) -> str:
    kind = "full" if result.get("full") else "incremental"
    if result.get("unchanged"):
        return f"{kind} sync: no change, {result['total']} extensions"
    return (
        f"{kind} sync: {result['added']} added, {result['changed']} changed, {result['deleted']} deleted; "
        f"{result['total']} extensions, {result['groups']} groups in {result['seconds']:.2f} s"
    )


async def _sync_via_daemon(config: Config, args: argparse.Namespace, bar: Meter) -> int:
    started = time.time()
    body = {"full": args.full, "allow_empty": args.allow_empty}
    reply = await request(config.api_socket, "POST", "/api/v1/mirror/sync", body)
    mirror = reply["mirror"]
    if not mirror.get("source"):
        print("lifeline: no directory source configured ([mirror] source)", file=sys.stderr)
        return EXIT_ERROR
    deadline = time.monotonic() + WAIT_MAX_S
    # Follow the sync through the status: done once nothing runs and an attempt after ours is on record.
    while time.monotonic() < deadline:
        mirror = await request(config.api_socket, "GET", "/api/v1/mirror")
        if mirror.get("progress"):
            bar(mirror["progress"]["done"], mirror["progress"]["total"])
        if not mirror["syncing"] and (mirror.get("last_attempt") or 0) >= started - 1:
            break
        await asyncio.sleep(POLL_S)
    bar.close()
    return _report(mirror, started, args.json)


def _report(mirror: dict[str, Any], started: float, as_json: bool) -> int:
    if mirror.get("last_error") and (mirror.get("last_error_at") or 0) >= started - 1:
        print(f"lifeline: sync failed; the last good mirror stays: {mirror['last_error']}", file=sys.stderr)
        return EXIT_ERROR
    result = mirror.get("last_result") or {}
    print(json.dumps({**result, "via": "daemon"}, indent=2) if as_json else _describe_result(result))
    if mirror.get("short_passwords"):
        print(f"lifeline: {short_password_warning(mirror['short_passwords'])}", file=sys.stderr)
    return 0


async def _sync_here(config: Config, args: argparse.Namespace, bar: Meter) -> int:
    source = build_source(config)
    if source is None:
        print("lifeline: no directory source configured ([mirror] source)", file=sys.stderr)
        return EXIT_ERROR
    store = Store(config.db_path)
    try:
        engine = SyncEngine(store, source, config.cloud.realm, max(config.mirror.timeout_s * 10, 60.0))
        try:
            result = await engine.run(full=args.full, allow_empty=args.allow_empty, progress=bar)
        except MirrorError as err:
            bar.close()
            print(f"lifeline: sync failed; the last good mirror stays: {err}", file=sys.stderr)
            return EXIT_ERROR
        bar.close()
        if args.json:
            print(json.dumps({**result.as_dict(), "via": "store"}, indent=2))
        else:
            print(_describe_result(result.as_dict()) + " (daemon not running: applied to the store directly)")
        if result.short_passwords:
            print(f"lifeline: {short_password_warning(result.short_passwords)}", file=sys.stderr)
        return 0
    finally:
        store.close()


def run(args: argparse.Namespace, config: Config) -> int:
    """Run `lifeline mirror …`."""
    if args.mirror_command == "sync":
        bar = Meter(terminal(args.json), "fetching the directory")
        try:
            return asyncio.run(_sync_via_daemon(config, args, bar))
        except DaemonUnreachableError:
            return asyncio.run(_sync_here(config, args, bar))  # no daemon there: nobody else writes the store
        except DaemonRequestError as err:
            bar.close()
            raise DaemonRequestError(f"{err}; not synced behind the running daemon") from err
    try:
        mirror = asyncio.run(request(config.api_socket, "GET", "/api/v1/mirror"))
        mirror["running"] = True
    except DaemonUnreachableError:
        store = Store(config.db_path)
        try:
            mirror = offline_status(config, store) or {"source": None}
        finally:
            store.close()
        mirror["running"] = False
    if args.json:
        print(json.dumps(mirror, indent=2))
    else:
        print("\n".join(status_lines(mirror)))
    return 0
