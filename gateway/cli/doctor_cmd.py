"""`lifeline doctor`: an installation's checks from the command line, with their fixes."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from gateway.config import DEFAULT_PATHS, Config
from gateway.doctor import (
    Check,
    Facts,
    Verdict,
    as_json,
    confirm,
    exit_code,
    gather,
    paths_only,
    run_checks,
    summary,
    text_lines,
)
from gateway.errors import ConfigError


def add_parser(sub: Any) -> None:
    """Register `lifeline doctor` on the main parser's subcommands."""
    doctor = sub.add_parser(
        "doctor", help="check this installation: each check passes, warns or fails, with a one-line fix"
    )
    doctor.add_argument("--json", action="store_true", help='one JSON object: {"checks": [...], "ok": …}')


def run(args: argparse.Namespace, config: Config, config_path: Path | None) -> int:
    """Check with a valid config: 0 without failures, 1 with any."""
    return _report(args, asyncio.run(gather(config, config_path)))


def run_invalid(args: argparse.Namespace, error: ConfigError) -> int:
    """Check with a config that does not validate: it fails naming the keys; the rest is checked anyway (exit 2)."""
    path = args.config or next((p for p in DEFAULT_PATHS if p.exists()), None)
    facts = asyncio.run(gather(None, path, str(error), paths_only(path)))
    return _report(args, facts)


def _report(args: argparse.Namespace, facts: Facts) -> int:
    checks = run_checks(facts)
    if args.json:
        print(as_json(checks, facts))
        return exit_code(checks, facts)
    print("\n".join(text_lines(checks)))
    # Only a person at a terminal can say what the LEDs show; a script or install log is not asked.
    if sys.stdin.isatty() and sys.stdout.isatty() and any(c.verdict is Verdict.LOOK for c in checks):
        print("\nlook at the box:")
        checks = confirm(checks, _ask)
    print(summary(checks))
    return exit_code(checks, facts)


def _ask(check: Check) -> bool | None:
    """Ask whether a LOOK item shows as described: yes, no, or no answer (Enter)."""
    try:
        answer = input(f"  {check.name}: {check.detail}\n  is that what you see? [y/n, Enter: skip] ")
    except EOFError:
        return None
    reply = answer.strip().lower()
    if reply in ("y", "yes"):
        return True
    if reply in ("n", "no"):
        print(f"  fix: {check.fix}")
        return False
    return None
