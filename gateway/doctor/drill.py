"""The doctor's look at the drills: was one ever run, how the last one came out, does the monthly timer run them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gateway.config import Config
from gateway.doctor.model import Check, Facts, Verdict, ago

# `systemctl enable lifeline-drill.timer` makes this link (firmware/systemd/lifeline-drill.timer: WantedBy).
TIMER_LINK = Path("/etc/systemd/system/timers.target.wants/lifeline-drill.timer")
OVERDUE_S = 35 * 86400.0  # a monthly timer (with its random delay and a box that was off) drills within this
ENABLE = "`systemctl enable --now lifeline-drill.timer`"


def timer_enabled(link: Path = TIMER_LINK) -> bool:
    """Whether the monthly drill timer is enabled (blocking: a file-system look)."""
    return link.is_symlink() or link.exists()


def last_report(directory: Path) -> dict[str, Any] | None:
    """The newest drill report in directory as the status document summarises it; None if none (blocking)."""
    # Ids are UTC times (a suffix -N for a second drill within one second): they sort as they ran.
    reports = sorted(directory.glob("*.json"), key=lambda p: (p.stem.partition("-")[0], len(p.stem), p.stem))
    for path in reversed(reports):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or "started" not in data:
            continue
        failed = [str(c.get("name")) for c in data.get("checks") or [] if c.get("outcome") == "fail"]
        html = path.with_suffix(".html")
        return {
            "id": data.get("id", path.stem),
            "started": data["started"],
            "passed": bool(data.get("passed")) and not failed,
            "failed": failed,
            "reports": {"json": str(path), "html": str(html)} if html.exists() else {"json": str(path)},
        }
    return None


def drill_check(facts: Facts, config: Config) -> Check:
    """The last drill passed, and a recent one exists when the monthly timer is on."""
    drill = (facts.status or {}).get("drill") or {}
    if drill.get("running"):
        return Check("drill", Verdict.PASS, f"a drill is running now ({drill.get('state')})")
    last = drill.get("last") if facts.status is not None else facts.drill_last
    timer = facts.drill_timer
    if config.drill.caller is None:
        if timer:
            detail = "the monthly drill timer is on but [drill] names no test extensions: each scheduled drill fails"
            return Check("drill", Verdict.WARN, detail, "set [drill] caller and callee (two dedicated test extensions)")
        detail = "not set up: no [drill] caller and callee (two dedicated test extensions)"
        return Check("drill", Verdict.SKIP, detail)
    if not last:
        fix = f"`lifeline drill` proves the failover now; {ENABLE} runs one monthly"
        return Check("drill", Verdict.WARN, "no drill was ever run on this box", fix)
    age = facts.now - float(last.get("started") or 0)
    report = (last.get("reports") or {}).get("html") or (last.get("reports") or {}).get("json")
    when = f"drill {last.get('id')} {ago(age)} ago"
    if not last.get("passed"):
        failed = ", ".join(last.get("failed") or []) or "see its report"
        where = f"; its report: {report}" if report else ""
        fix = f"`lifeline drill` again: each failed check prints its fix{where}"
        return Check("drill", Verdict.FAIL, f"the last {when} FAILED: {failed}", fix)
    if timer and age > OVERDUE_S:
        detail = f"the last {when} passed, but the monthly timer has run none since"
        fix = "`systemctl list-timers lifeline-drill.timer` and `journalctl -u lifeline-drill` say why"
        return Check("drill", Verdict.WARN, detail, fix)
    schedule = "monthly timer on" if timer else f"no monthly timer ({ENABLE})"
    return Check("drill", Verdict.PASS, f"the last {when} passed; {schedule}")
