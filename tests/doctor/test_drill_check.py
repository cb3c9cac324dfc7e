"""The doctor's drill check: never run, the last one failed, overdue under the monthly timer, or fine.

Reports are written by the drill's own writer (gateway.drill.report) into a real directory; the doctor
reads them back with the daemon down, or takes the daemon's status with it up.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from gateway.config import parse
from gateway.doctor import Facts, Verdict, run_checks, text_lines
from gateway.doctor.drill import OVERDUE_S, drill_check, last_report, timer_enabled
from gateway.drill.model import Check, DrillResult, DrillState, Outcome
from gateway.drill.report import write_reports

NOW = 1_800_000_000.0
DAY = 86400.0
CONFIG = parse({"drill": {"caller": "1091", "callee": "1092"}, "health": {"lan_target": "off"}})


def result(drill_id: str, started: float, *, failed: tuple[str, ...] = ()) -> DrillResult:
    checks = [Check("failover", Outcome.PASS, "serving locally 0.2 s after the override")]
    checks += [Check(name, Outcome.FAIL, "it broke", "the fix") for name in failed]
    state = DrillState.FAILED if failed else DrillState.DONE
    return DrillResult(id=drill_id, started=started, state=state, finished=started + 40, checks=checks)


def facts(*, status: dict[str, Any] | None = None, last: dict[str, Any] | None = None, timer: bool = True) -> Facts:
    return Facts(config=CONFIG, config_path=None, status=status, drill_last=last, drill_timer=timer, now=NOW)


def test_the_newest_report_is_read_back_as_the_status_shows_it(tmp_path: Path) -> None:
    assert last_report(tmp_path / "drills") is None
    write_reports(tmp_path, result("20270101T020000Z", NOW - 40 * DAY))
    write_reports(tmp_path, result("20270115T020000Z", NOW - 20 * DAY, failed=("test calls",)))
    write_reports(tmp_path, result("20270115T020000Z-2", NOW - 20 * DAY + 1))  # a second drill that second
    last = last_report(tmp_path)
    assert last is not None
    assert (last["id"], last["passed"], last["failed"]) == ("20270115T020000Z-2", True, [])
    assert last["reports"]["html"].endswith("20270115T020000Z-2.html")
    (tmp_path / "20270115T020000Z-2.json").unlink()
    last = last_report(tmp_path)
    assert last is not None and (last["id"], last["passed"], last["failed"]) == (
        "20270115T020000Z",
        False,
        ["test calls"],
    )


def test_a_failed_last_drill_fails_with_its_report_and_how_to_fix(tmp_path: Path) -> None:
    write_reports(tmp_path, result("20270115T020000Z", NOW - 2 * DAY, failed=("test calls", "failback")))
    check = drill_check(facts(last=last_report(tmp_path)), CONFIG)
    assert check.verdict is Verdict.FAIL
    assert "20270115T020000Z 2 d ago FAILED: test calls, failback" in check.detail
    assert check.fix is not None and "lifeline drill" in check.fix and "20270115T020000Z.html" in check.fix
    lines = text_lines([check])
    assert lines[0].startswith("✗ drill") and lines[1].strip().startswith("fix: ")


@pytest.mark.parametrize(
    ("age_days", "timer", "verdict", "says"),
    [
        (3, True, Verdict.PASS, "monthly timer on"),
        (3, False, Verdict.PASS, "systemctl enable --now lifeline-drill.timer"),
        (OVERDUE_S / DAY + 1, True, Verdict.WARN, "the monthly timer has run none since"),
        (OVERDUE_S / DAY + 1, False, Verdict.PASS, "no monthly timer"),
    ],
)
def test_a_passed_drill_warns_only_when_the_monthly_timer_let_it_grow_old(
    age_days: float, timer: bool, verdict: Verdict, says: str
) -> None:
    last = {"id": "x", "started": NOW - age_days * DAY, "passed": True, "failed": [], "reports": {}}
    check = drill_check(facts(last=last, timer=timer), CONFIG)
    assert check.verdict is verdict and says in check.detail + (check.fix or "")


def test_never_run_warns_and_not_set_up_is_skipped_unless_the_timer_would_fail() -> None:
    check = drill_check(facts(), CONFIG)
    assert (
        check.verdict is Verdict.WARN
        and "no drill was ever run" in check.detail
        and "lifeline drill" in (check.fix or "")
    )
    bare = parse({})
    assert drill_check(facts(timer=False), bare).verdict is Verdict.SKIP
    check = drill_check(facts(timer=True), bare)
    assert check.verdict is Verdict.WARN and "[drill] caller and callee" in (check.fix or "")


def test_with_the_daemon_up_its_status_is_what_counts() -> None:
    failed = {"id": "y", "started": NOW - DAY, "passed": False, "failed": ["failover"], "reports": {}}
    status = {"drill": {"state": "failed", "running": False, "last": failed}}
    assert drill_check(facts(status=status, last=None), CONFIG).verdict is Verdict.FAIL
    running = {"drill": {"state": "checking", "running": True, "last": failed}}
    assert drill_check(facts(status=running), CONFIG).verdict is Verdict.PASS
    names = [c.name for c in run_checks(facts(status=status))]
    assert names.count("drill") == 1 and names.index("drill") > names.index("certificate")


def test_the_timer_counts_as_on_when_systemd_linked_it(tmp_path: Path) -> None:
    link = tmp_path / "timers.target.wants" / "lifeline-drill.timer"
    assert not timer_enabled(link)
    link.parent.mkdir()
    os.symlink("/nonexistent/lifeline-drill.timer", link)  # a dangling link still means enabled
    assert timer_enabled(link)
