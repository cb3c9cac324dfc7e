"""`lifeline trunk status|sms`: the modem trunk from the command line (an installer's checks)."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from gateway.cli.client import request
from gateway.config import Config
from gateway.errors import LifelineError
from gateway.trunk import cli as trunk_cli

EXIT_ERROR = 1
SMS_TIMEOUT_S = 90.0  # the agent waits up to a minute for the network to take an SMS


def add_parser(sub: Any) -> None:
    """Register `lifeline trunk …` on the main parser's subcommands."""
    trunk = sub.add_parser("trunk", help="the GSM/LTE/analog trunk: modems, signal, a test SMS")
    tsub = trunk.add_subparsers(dest="trunk_command", required=True)
    status = tsub.add_parser("status", help="each modem's state, network, signal and problems")
    status.add_argument("--json", action="store_true")
    sms = tsub.add_parser("sms", help="send a test SMS through the modem (proves SIM, network and modem)")
    sms.add_argument("number", help="E.164, e.g. +4915112345678")
    sms.add_argument("text", nargs="?", default="Lifeline trunk test: this branch can reach you by SMS.")


def run(args: argparse.Namespace, config: Config) -> int:
    """Run the trunk subcommand; 1 when the trunk cannot do it."""
    if not config.trunk.modems:
        raise LifelineError("no trunk configured: add [[trunk.modems]] to the config")
    if args.trunk_command == "status":
        data = asyncio.run(request(config.api_socket, "GET", "/api/v1/trunk"))
        if args.json:
            print(json.dumps(data, indent=2))
        else:
            print("\n".join(trunk_cli.status_lines(data)))
        ready = any(m.get("state") == "ready" for m in data.get("modems") or [])
        return 0 if ready else EXIT_ERROR
    body = {"numbers": [args.number], "text": args.text}
    reply = asyncio.run(request(config.api_socket, "POST", "/api/v1/trunk/sms", body, limit_s=SMS_TIMEOUT_S))
    result = reply["results"].get(args.number, "no result")
    print(f"SMS to {args.number}: {result}")
    return 0 if result == "sent" else EXIT_ERROR
