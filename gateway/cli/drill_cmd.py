"""`lifeline drill`: a disaster-recovery drill on the running daemon, its progress as it goes, and its report."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.cli.client import request
from gateway.cli.progress import Meter, terminal
from gateway.config import Config, DrillConfig
from gateway.drill.model import DrillResult, DrillState
from gateway.drill.report import render_html, render_json
from gateway.drill.runner import DrillError
from gateway.errors import DaemonRequestError

POLL_S = 0.5
Show = Callable[[dict[str, Any]], None]


def add_parser(sub: Any) -> None:
    """Register `lifeline drill` on the CLI's subparsers."""
    drill = sub.add_parser(
        "drill", help="prove the failover while the office works: forced SURVIVAL, test calls, back, a report"
    )
    drill.add_argument("--json", action="store_true", help="print only the report, as JSON")
    drill.add_argument(
        "--emergency-test", action="store_true", help="also call [drill] emergency_test_number through the trunk"
    )
    drill.add_argument("--force", action="store_true", help="run although the box is not in NORMAL (ends an override)")
    drill.add_argument(
        "--out", type=Path, metavar="DIR", help="also write the reports (JSON and HTML) into this directory"
    )


def limit_s(drill: DrillConfig) -> float:
    """How long the CLI waits for a drill: every step's own limit, and some."""
    calls = 3 * (drill.call_timeout_s + drill.listen_s + 10)
    return 2 * drill.failover_timeout_s + calls + drill.records_timeout_s + 60


def run(args: argparse.Namespace, config: Config) -> int:
    """Start a drill, follow it, show and keep its report: 0 when it passed, 1 when it failed."""
    # On a terminal a spinner on stderr names the step under way; the timeline lines stay on stdout.
    meter = Meter(terminal(args.json, stdout_too=True), "drill starting", transient=True)

    def show(moment: dict[str, Any]) -> None:
        meter.describe(f"drill: {moment['state'].replace('_', ' ')}")
        _progress(moment)

    try:
        drill = asyncio.run(
            follow(
                config.api_socket, args.emergency_test, args.force, limit_s(config.drill), None if args.json else show
            )
        )
    finally:
        meter.close()
    out = write_out(args.out, drill) if args.out is not None else None
    if args.json:
        print(json.dumps({**drill, "out": out} if out else drill, indent=2))
    else:
        print("\n".join(summary_lines(drill, out)))
    return 0 if drill.get("passed") else 1


async def follow(
    socket: Path, emergency_test: bool, force: bool, limit: float, show: Show | None = None
) -> dict[str, Any]:
    """POST the drill, then poll it until it ends; each new timeline line goes to show(moment) as it comes."""
    body = {"emergency_test": emergency_test, "force": force}
    started = await request(socket, "POST", "/api/v1/drill", body)
    drill_id = started["drill"]["id"]
    shown = 0
    deadline = time.monotonic() + limit
    while True:
        data = await request(socket, "GET", "/api/v1/drill")
        drill = data.get("drill") or {}
        if drill.get("id") != drill_id:
            raise DaemonRequestError(f"the daemon no longer knows drill {drill_id} (restarted?): see `lifeline status`")
        timeline = drill.get("timeline") or []
        if show is not None:
            for moment in timeline[shown:]:
                show(moment)
        shown = len(timeline)
        if not DrillState(drill["state"]).running:
            return dict(drill)
        if time.monotonic() > deadline:
            raise DaemonRequestError(f"drill {drill_id} did not finish within {limit:.0f} s: see `lifeline status`")
        await asyncio.sleep(POLL_S)


def _progress(moment: dict[str, Any]) -> None:
    when = dt.datetime.fromtimestamp(moment["ts"]).strftime("%H:%M:%S")
    print(f"{when}  {moment['state']:<16} {moment['message']}", flush=True)


def status_lines(drill: dict[str, Any] | None) -> list[str]:
    """`lifeline status`'s drill lines: the running drill, or the last one and where its report is."""
    if not drill:
        return []
    if drill.get("running"):
        return [f"drill:         running ({drill['state']})"]
    last = drill.get("last")
    if not last:
        return ["drill:         none yet (`lifeline drill`)"]
    verdict = "PASS" if last.get("passed") else "FAIL: " + ", ".join(last.get("failed") or [])
    when = dt.datetime.fromtimestamp(last["started"]).strftime("%Y-%m-%d %H:%M")
    lines = [f"drill:         {when} {verdict}"]
    if (last.get("reports") or {}).get("html"):
        lines.append(f"  report:      {last['reports']['html']}")
    return lines


def summary_lines(drill: dict[str, Any], out: dict[str, str] | None) -> list[str]:
    """The verdict, the measured times, each check (with its fix when it failed) and where the reports are."""

    def took(value: float | None) -> str:
        return "—" if value is None else f"{value:.3f} s"

    lines = [
        "",
        f"drill {drill['id']}: {'PASS' if drill.get('passed') else 'FAIL'}",
        f"failover: {took(drill.get('failover_s'))}   failback: {took(drill.get('failback_s'))}",
    ]
    for check in drill.get("checks") or []:
        lines.append(f"  {check['outcome'].upper():4}  {check['name']}: {check['detail']}")
        if check["outcome"] == "fail" and check.get("fix"):
            lines.append(f"        fix: {check['fix']}")
    reports = drill.get("reports") or {}
    if reports:
        lines.append(f"report on the box: {reports.get('html')} (and .json)")
    if out:
        lines.append(f"report written to: {out['html']} and {out['json']}")
    return lines


def write_out(directory: Path, drill: dict[str, Any]) -> dict[str, str]:
    """The reports, as the daemon keeps them, into directory (files 0600); their paths."""
    result = DrillResult.from_dict(drill)
    paths = {"json": directory / f"{result.id}.json", "html": directory / f"{result.id}.html"}
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for fmt, text in (("json", render_json(result)), ("html", render_html(result))):
            fd = os.open(paths[fmt], os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
    except OSError as err:
        raise DrillError(f"--out {directory}: cannot write the report: {err}") from err
    return {fmt: str(path) for fmt, path in paths.items()}
