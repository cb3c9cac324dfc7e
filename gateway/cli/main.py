"""`lifeline`: the daemon and the commands installers use on it."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway import __version__, logs, memory
from gateway import config as config_mod
from gateway.cli import (
    admin_cmd,
    backup_cmd,
    cdr_cmd,
    config_cmd,
    doctor_cmd,
    drill_cmd,
    firewall_cmd,
    ha_cmd,
    lab_cmd,
    mirror_cmd,
    token_cmd,
    trunk_cmd,
)
from gateway.cli.client import request
from gateway.config import Config
from gateway.core.health import WHERE
from gateway.core.mode import Override, set_override_offline
from gateway.errors import ConfigError, DaemonRequestError, DaemonUnreachableError, ImportRowsError, LifelineError
from gateway.mirror.files import NO_HEADER_COLUMNS, read_extensions_file
from gateway.store import Store
from gateway.trunk import cli as trunk_cli
from gateway.web import phones

EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_NOT_RUNNING = 3
RESTART_SLACK_S = 5.0  # the mode's "since" and the daemon's start are a moment apart on a first start


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lifeline", description="Branch-office survivability gateway.")
    parser.add_argument("--version", action="version", version=f"lifeline {__version__}")
    parser.add_argument("--config", type=Path, help="TOML config (default /etc/lifeline/lifeline.toml if present)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the daemon in the foreground")
    status = sub.add_parser("status", help="mode, registrations, and where the data lives")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    mode = sub.add_parser("mode", help="set the mode by hand, or back to automatic")
    mode.add_argument("mode", choices=[o.value for o in Override])
    mode.add_argument("--reason", default=None, help="recorded with the change")
    ext = sub.add_parser("extensions", help="the extensions Lifeline can serve")
    ext_sub = ext.add_subparsers(dest="ext_command", required=True)
    imp = ext_sub.add_parser("import", help="import a CSV or JSON file (passwords are hashed at once)")
    imp.add_argument("file", type=Path, help="CSV with a header row naming its columns (number,password,…), or JSON")
    imp.add_argument(
        "--no-header",
        action="store_true",
        help=f"the CSV has no header row: its columns are {','.join(NO_HEADER_COLUMNS)} in this order",
    )
    lst = ext_sub.add_parser("list", help="list the extensions (no secrets)")
    lst.add_argument("--json", action="store_true")
    mirror_cmd.add_parser(sub)
    cdr_cmd.add_parser(sub)
    trunk_cmd.add_parser(sub)
    backup_cmd.add_parser(sub)
    doctor_cmd.add_parser(sub)
    drill_cmd.add_parser(sub)
    config_cmd.add_parser(sub)
    token_cmd.add_parser(sub)
    firewall_cmd.add_parser(sub)
    ha_cmd.add_parser(sub)
    admin_cmd.add_parser(sub)
    lab_cmd.add_parser(sub)
    return parser


def _ago(ts: float) -> str:
    seconds = int(time.time() - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _print_status(data: dict[str, Any]) -> None:
    mode = data["mode"]
    override = "" if mode["override"] == "auto" else f"  (manual override: {mode['override']})"
    print(f"mode:          {mode['mode'].upper()}{override}")
    print(since_line(mode, data.get("uptime_s") if data.get("running", True) else None))
    if not data.get("running", True):
        print("daemon:        NOT RUNNING")
    else:
        sip = data["sip"]
        kam = sip["kamailio"] or {}
        print(f"daemon:        running, pid {data['pid']}, up {_ago(time.time() - data['uptime_s'])}")
        print(f"sip:           {sip['listen']}:{sip['port']} ({'+'.join(sip['transports'])}), realm {sip['realm']}")
        print(f"cloud:         {sip['cloud'] or 'none configured'}")
        print(f"kamailio:      {kam.get('state')}, pid {kam.get('pid')}, restarts {kam.get('restarts')}")
        for line in ha_cmd.status_lines(data.get("ha")):
            print(line)
        reg = data.get("registrations")
        print(f"registrations: {reg['users']} users, {reg['contacts']} contacts" if reg else "registrations: unknown")
        for line in phones.status_lines((reg or {}).get("phones")):
            print(line)
        for line in _edge_lines(sip.get("edge")):
            print(line)
        _print_health(data.get("health") or {}, mode.get("detected", mode["mode"]))
    print(f"extensions:    {data['extensions']}")
    print("\n".join(mirror_cmd.status_lines(data.get("mirror"))))
    for line in trunk_cli.status_lines(data.get("trunk")):
        print(line)
    for line in drill_cmd.status_lines(data.get("drill")):
        print(line)
    for line in token_cmd.status_lines(data.get("api")):
        print(line)
    for key, value in data["paths"].items():
        print(f"{key + ':':15}{value}")


def since_line(mode: dict[str, Any], up_s: float | None) -> str:
    """Since when the mode holds, and why; plus the daemon's restart if that came later (up_s: its uptime)."""
    line = f"since:         {_ago(mode['since'])} ago — {mode['reason']}"
    # The mode outlives a restart: say so, lest "since" be read as the daemon's start.
    if up_s is not None and time.time() - up_s > mode["since"] + RESTART_SLACK_S:
        line += f" (daemon restarted {_ago(time.time() - up_s)} ago)"
    return line


def _edge_lines(edge: dict[str, Any] | None) -> list[str]:
    """Banned addresses and failed logins, as `lifeline status` shows them."""
    if not edge:  # Kamailio did not answer in time (a status does not wait longer): not "no bans"
        return ["banned:        unknown (Kamailio did not answer)"]
    lines = [f"banned:        {len(edge['bans'])} address(es)" if edge["bans"] else "banned:        none"]
    for ban in edge["bans"]:
        until = time.strftime("%H:%M:%S", time.localtime(ban["until"]))
        lines.append(f"  {ban['address']:15} until {until} (ban {ban['bans']} today)")
    failed = ", ".join(f"{who} {count}" for who, count in sorted(edge["failed_logins"].items()))
    if failed:
        lines.append(f"failed logins: {failed}")
    return lines


def _print_health(health: dict[str, Any], detected: str) -> None:
    if not health.get("probes"):
        print("health:        no probes (no cloud configured)")
        return
    print(f"health:        {WHERE.get(health['where'], health['where'])}; detection says {detected.upper()}")
    for name, probe in health["probes"].items():
        state = "--" if probe["ok"] is None else ("ok" if probe["ok"] else "FAIL")
        rtt = "" if probe["rtt_ms"] is None else f" rtt {probe['rtt_ms']} ms"
        loss = "" if probe["loss"] is None else f" loss {probe['loss']:.0%} of {probe['samples']}"
        print(f"  {name:12} {state:4}{rtt}{loss}  {probe['detail'] or ''}")
    for sbc in health.get("sbcs") or []:  # each cloud SBC in order: calls go to the first one up
        rtt = "" if sbc["rtt_ms"] is None else f" rtt {sbc['rtt_ms']} ms"
        source = f" (from {sbc['source']})" if sbc.get("source", "configured") != "configured" else ""
        print(f"  sbc {sbc['uri']}: {sbc['state']}{rtt}{source}")


def _offline_status(config: Config, config_path: Path | None) -> dict[str, Any]:
    paths = {
        "config": str(config_path) if config_path else None,
        "database": str(config.db_path),
        "run_dir": str(config.run_dir),
        "api_socket": str(config.api_socket),
    }
    never = {"mode": "normal", "override": "auto", "since": time.time(), "reason": "never started"}
    if not config.db_path.exists():
        # Nothing to read, and creating the store here would race a daemon that is starting.
        mirror = mirror_cmd.offline_status(config, None)
        return {"running": False, "mode": never, "extensions": 0, "mirror": mirror, "paths": paths}
    store = Store(config.db_path)
    try:
        return {
            "running": False,
            "mode": store.get_state("mode", {}) or never,
            "extensions": store.count_extensions(),
            "mirror": mirror_cmd.offline_status(config, store),
            "paths": paths,
        }
    finally:
        store.close()


def _cmd_status(args: argparse.Namespace, config: Config, config_path: Path | None) -> int:
    try:
        data = asyncio.run(request(config.api_socket, "GET", "/api/v1/status"))
        data["running"] = True
        code = 0
    except DaemonUnreachableError:
        data = _offline_status(config, config_path)
        code = EXIT_NOT_RUNNING
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        _print_status(data)
    return code


def _cmd_mode(args: argparse.Namespace, config: Config) -> int:
    override = Override(args.mode)
    reason = args.reason or f"set by hand to {override.value}"
    try:
        data = asyncio.run(
            request(config.api_socket, "PUT", "/api/v1/mode", {"mode": override.value, "reason": reason})
        )
        mode = data["mode"]
        print(f"mode is now {mode['mode'].upper()} (override: {mode['override']})")
    except DaemonUnreachableError as err:
        # Only with no daemon there: a running one is the only writer of the store.
        mode = asyncio.run(set_override_offline(config, override, reason))
        print(f"daemon not running ({err}); saved: it starts in {mode['mode'].upper()}")
    except DaemonRequestError as err:
        raise DaemonRequestError(
            f"{err}; not written behind the running daemon (`lifeline status` shows the mode)"
        ) from err
    return 0


def _cmd_extensions(args: argparse.Namespace, config: Config) -> int:
    if args.ext_command == "import":
        parsed = read_extensions_file(args.file, config.cloud.realm, header=not args.no_header)
        store = Store(config.db_path)
        try:
            count = store.replace_extensions(parsed.extensions, source=f"import:{args.file.name}")
        finally:
            store.close()
        print(f"imported {count} extension(s) from {args.file} into {config.db_path} (passwords stored as HA1 only)")
        for warning in parsed.warnings:
            print(f"lifeline: warning: {warning}", file=sys.stderr)
        return 0
    store = Store(config.db_path)
    try:
        rows = store.extensions()
    finally:
        store.close()
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(f"{row['number']:>8}  {row['auth_user']:<16} {row['realm']:<20} {row['display_name']}")
        print(f"{len(rows)} extension(s)")
    return 0


# The commands that need only their arguments and the config; extensions is the default.
COMMANDS: dict[str, Callable[[argparse.Namespace, Config], int]] = {
    "mode": _cmd_mode,
    "mirror": mirror_cmd.run,
    "cdr": cdr_cmd.run,
    "trunk": trunk_cmd.run,
    "token": token_cmd.run,
    "drill": drill_cmd.run,
    "firewall": firewall_cmd.run,
    "ha": ha_cmd.run,
    "admin": admin_cmd.run,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `lifeline` console script."""
    try:
        code = _run(argv)
        sys.stdout.flush()  # a reader gone away shows here, inside the handler, not at interpreter exit
        return code
    except BrokenPipeError:
        # `lifeline status | head`: the reader has what it wanted. Later flushes go nowhere, quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.dup2(devnull, sys.stderr.fileno())
        return 128 + signal.SIGPIPE  # what a shell reports for a command a closed pipe stopped


def _run(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "config":
        return config_cmd.run(args)  # it checks or writes the file it is given, not the config in use
    if args.command == "lab":
        return lab_cmd.run(args)  # it builds its own daemon, config and all, and removes them
    if args.command == "ha" and args.ha_command == "key":
        return ha_cmd.make_key(args)  # made before [ha] names it: no config needed
    try:
        config, config_path = config_mod.load(args.config)
    except ConfigError as err:
        if args.command == "doctor":
            return doctor_cmd.run_invalid(args, err)  # the doctor reports a bad config among its checks
        print(f"lifeline: {err}", file=sys.stderr)
        return EXIT_CONFIG
    logs.configure(config.log.level, config.log.format)
    try:
        if args.command == "run":
            from gateway.app import App

            memory.few_arenas()
            asyncio.run(App(config, config_path).run_forever())
            return 0
        if args.command == "status":
            return _cmd_status(args, config, config_path)
        if args.command == "backup":
            return backup_cmd.run(args, config, config_path)
        if args.command == "doctor":
            return doctor_cmd.run(args, config, config_path)
        return COMMANDS.get(args.command, _cmd_extensions)(args, config)
    except ImportRowsError as err:
        print(f"lifeline: {err}", file=sys.stderr)
        return EXIT_ERROR
    except LifelineError as err:
        print(f"lifeline: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
