"""Runs the checks in the order an installer reads them, and shows them as lines or one JSON object."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

from gateway.doctor.drill import drill_check
from gateway.doctor.machine import certificate_check, clock_check, disk_check, wear_check
from gateway.doctor.model import Check, Facts, Verdict
from gateway.doctor.panel import panel_checks
from gateway.doctor.service import (
    cloud_checks,
    config_check,
    daemon_check,
    kamailio_check,
    listening_check,
    mirror_check,
    mode_check,
    phones_check,
)
from gateway.doctor.trunk import trunk_checks
from gateway.ha.doctor import ha_checks

EXIT_FAILED = 1
EXIT_CONFIG = 2  # as every `lifeline` command exits on a bad config
SYMBOLS = {Verdict.PASS: "✓", Verdict.WARN: "!", Verdict.FAIL: "✗", Verdict.SKIP: "-", Verdict.LOOK: "?"}
NAME_WIDTH = 12
# What needs a valid config to be judged; with a bad one these wait until it is fixed.
NEEDS_CONFIG = (
    "cloud-sip",
    "cloud-dns",
    "cloud-api",
    "lan",
    "mirror",
    "modem",
    "sim",
    "network",
    "signal",
    "voice",
    "certificate",
    "drill",
    "leds",
    "relay",
)


def run_checks(facts: Facts) -> list[Check]:
    """Every check, from the config down to what the installer has to look at."""
    checks = [config_check(facts), daemon_check(facts), kamailio_check(facts), listening_check(facts)]
    checks.append(mode_check(facts))
    config = facts.config
    if config is None:
        first = "the config comes first"
        return [*checks, clock_check(facts), disk_check(facts), wear_check(facts), phones_check(facts)] + [
            Check(name, Verdict.SKIP, first) for name in NEEDS_CONFIG
        ]
    checks += cloud_checks(facts, config)
    checks += ha_checks(facts, config)
    checks.append(mirror_check(facts))
    checks += trunk_checks(facts, config)
    checks += [clock_check(facts), disk_check(facts), wear_check(facts), phones_check(facts)]
    checks.append(certificate_check(facts))
    checks.append(drill_check(facts, config))
    checks += panel_checks(facts, config)
    return checks


def confirm(checks: list[Check], ask: Callable[[Check], bool | None]) -> list[Check]:
    """The installer's answers to the LOOK items: yes passes, no fails with the fix, no answer leaves it."""
    answered = []
    for check in checks:
        answer = ask(check) if check.verdict is Verdict.LOOK else None
        if answer is None:
            answered.append(check)
        else:
            answered.append(replace(check, verdict=Verdict.PASS if answer else Verdict.FAIL))
    return answered


def exit_code(checks: list[Check], facts: Facts) -> int:
    """2 for a bad config, 1 when anything failed, else 0 (warnings and LOOK items do not fail)."""
    if facts.config_error is not None:
        return EXIT_CONFIG
    return EXIT_FAILED if any(c.verdict is Verdict.FAIL for c in checks) else 0


def text_lines(checks: list[Check]) -> list[str]:
    """One line a check; the fix under each failure and warning (and what to do if a LOOK item differs)."""
    indent = " " * (NAME_WIDTH + 3)
    lines = []
    for check in checks:
        first, *more = check.detail.splitlines() or [""]
        lines.append(f"{SYMBOLS[check.verdict]} {check.name:<{NAME_WIDTH}} {first}")
        lines += [f"{indent}{line.strip()}" for line in more]
        if check.fix and check.verdict in (Verdict.FAIL, Verdict.WARN):
            lines.append(f"{indent}fix: {check.fix}")
        elif check.fix and check.verdict is Verdict.LOOK:
            lines.append(f"{indent}if not: {check.fix}")
    return lines


def summary(checks: list[Check]) -> str:
    """The closing line: counts by verdict."""
    counts = {verdict: sum(c.verdict is verdict for c in checks) for verdict in Verdict}
    parts = [
        f"{counts[Verdict.PASS]} passed",
        f"{counts[Verdict.WARN]} warning(s)",
        f"{counts[Verdict.FAIL]} failed",
        f"{counts[Verdict.SKIP]} skipped",
    ]
    if counts[Verdict.LOOK]:
        parts.append(f"{counts[Verdict.LOOK]} to look at")
    verdict = "fix the failures above" if counts[Verdict.FAIL] else "no failures"
    return f"{', '.join(parts)}: {verdict}"


def as_json(checks: list[Check], facts: Facts) -> str:
    """One JSON object: {"checks": [...], "ok": bool}."""
    return json.dumps({"checks": [c.as_dict() for c in checks], "ok": exit_code(checks, facts) == 0}, indent=2)
