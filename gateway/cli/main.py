"""`lifeline`: the daemon and the commands installers use on it."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from gateway import __version__, logs
from gateway import config as config_mod
from gateway.cli import cdr_cmd, mirror_cmd, trunk_cmd
from gateway.cli.client import request
from gateway.config import Config
from gateway.core.mode import Override
from gateway.errors import ConfigError, DaemonUnreachableError, ImportRowsError, LifelineError
from gateway.mirror.files import read_extensions_file
from gateway.store import Store
from gateway.trunk import cli as trunk_cli

EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_NOT_RUNNING = 3


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
    imp.add_argument("file", type=Path)
    lst = ext_sub.add_parser("list", help="list the extensions (no secrets)")
    lst.add_argument("--json", action="store_true")
    mirror_cmd.add_parser(sub)
    cdr_cmd.add_parser(sub)
    trunk_cmd.add_parser(sub)
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
    print(f"since:         {_ago(mode['since'])} ago — {mode['reason']}")
    if not data.get("running", True):
        print("daemon:        NOT RUNNING")
    else:
        sip = data["sip"]
        kam = sip["kamailio"] or {}
        print(f"daemon:        running, pid {data['pid']}, up {_ago(time.time() - data['uptime_s'])}")
        print(f"sip:           {sip['listen']}:{sip['port']} ({'+'.join(sip['transports'])}), realm {sip['realm']}")
        print(f"cloud:         {sip['cloud'] or 'none configured'}")
        print(f"kamailio:      {kam.get('state')}, pid {kam.get('pid')}, restarts {kam.get('restarts')}")
        reg = data.get("registrations")
        print(f"registrations: {reg['users']} users, {reg['contacts']} contacts" if reg else "registrations: unknown")
        _print_health(data.get("health") or {}, mode.get("detected", mode["mode"]))
    print(f"extensions:    {data['extensions']}")
    print("\n".join(mirror_cmd.status_lines(data.get("mirror"))))
    for line in trunk_cli.status_lines(data.get("trunk")):
        print(line)
    for key, value in data["paths"].items():
        print(f"{key + ':':15}{value}")


WHERE = {
    "ok": "cloud reachable",
    "lan": "LAN: the upstream router does not answer",
    "wan": "WAN: neither the cloud's SIP edge nor its API answers",
    "cloud_sip": "cloud SIP edge does not answer (its API does)",
    "cloud_api": "cloud API does not answer (SIP does)",
    "dns": "DNS: the cloud's names do not resolve (cached addresses still used)",
}


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


def _offline_status(config: Config, config_path: Path | None) -> dict[str, Any]:
    store = Store(config.db_path)
    try:
        mode = store.get_state("mode", {}) or {
            "mode": "normal",
            "override": "auto",
            "since": time.time(),
            "reason": "never started",
        }
        return {
            "running": False,
            "mode": mode,
            "extensions": store.count_extensions(),
            "mirror": mirror_cmd.offline_status(config, store),
            "paths": {
                "config": str(config_path) if config_path else None,
                "database": str(config.db_path),
                "run_dir": str(config.run_dir),
                "api_socket": str(config.api_socket),
            },
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
    from gateway.app import set_override_offline

    override = Override(args.mode)
    reason = args.reason or f"set by hand to {override.value}"
    try:
        data = asyncio.run(
            request(config.api_socket, "PUT", "/api/v1/mode", {"mode": override.value, "reason": reason})
        )
        mode = data["mode"]
        print(f"mode is now {mode['mode'].upper()} (override: {mode['override']})")
    except DaemonUnreachableError as err:
        mode = asyncio.run(set_override_offline(config, override, reason))
        print(f"daemon not reachable ({err}); saved: it starts in {mode['mode'].upper()}")
    return 0


def _cmd_extensions(args: argparse.Namespace, config: Config) -> int:
    if args.ext_command == "import":
        extensions = read_extensions_file(args.file, config.cloud.realm)
        store = Store(config.db_path)
        try:
            count = store.replace_extensions(extensions, source=f"import:{args.file.name}")
        finally:
            store.close()
        print(f"imported {count} extension(s) from {args.file} into {config.db_path} (passwords stored as HA1 only)")
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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `lifeline` console script."""
    args = _parser().parse_args(argv)
    try:
        config, config_path = config_mod.load(args.config)
    except ConfigError as err:
        print(f"lifeline: {err}", file=sys.stderr)
        return EXIT_CONFIG
    logs.configure(config.log.level, config.log.format)
    try:
        if args.command == "run":
            from gateway.app import App

            asyncio.run(App(config, config_path).run_forever())
            return 0
        if args.command == "status":
            return _cmd_status(args, config, config_path)
        if args.command == "mode":
            return _cmd_mode(args, config)
        if args.command == "mirror":
            return mirror_cmd.run(args, config)
        if args.command == "cdr":
            return cdr_cmd.run(args, config)
        if args.command == "trunk":
            return trunk_cmd.run(args, config)
        return _cmd_extensions(args, config)
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
