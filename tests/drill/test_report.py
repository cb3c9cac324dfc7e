"""The drill's pure parts: the report from a result, each test call's verdict and fix, the test number's dial rule."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from gateway import config
from gateway.drill.checks import call_check
from gateway.drill.model import CallTest, Check, DrillResult, DrillState, Moment, Outcome
from gateway.drill.report import new_id, render_html, render_json, report_paths, write_reports
from gateway.errors import ConfigError
from gateway.trunk.dialplan import decide, policy_from

T0 = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC


def failed_result() -> DrillResult:
    audio = {
        "callee": {"expected_hz": 1000, "heard_hz": 1000, "share": 1.0, "ok": True},
        "caller": {"expected_hz": 2000, "heard_hz": None, "share": 0.0, "ok": False},
    }
    calls = [
        CallTest("extension", "1901", "1902", 200, "OK", True, "abc@host", audio),
        CallTest("trunk", "1901", "+4930123456", 503, "<b>Trunk</b> Not Available"),
    ]
    return DrillResult(
        id="20260101T000000Z",
        started=T0,
        state=DrillState.FAILED,
        finished=T0 + 4.5,
        mode_before={"mode": "normal", "override": "auto"},
        mode_after={"mode": "normal", "override": "auto"},
        failover_s=0.012,
        failback_s=0.034,
        registrations={"before": ["1001", "1002"], "carried": ["1001"], "missing": ["1002"]},
        calls=calls,
        records=[{"call_id": "abc@host", "state": "final", "delivery": {"csv": "delivered"}}],
        backlog={"before": 0, "after": 0},
        checks=[Check("failover", Outcome.PASS, "0.012 s"), *(call_check(c) for c in calls)],
        timeline=[Moment(T0, "snapshot", "drill started"), Moment(T0 + 0.5, "failing_over", "override SURVIVAL")],
    )


def test_the_html_report_shows_the_verdict_times_checks_with_fixes_calls_and_the_timeline() -> None:
    page = render_html(failed_result())
    assert '<span class="fail" id="verdict">FAIL</span>' in page
    assert "0.012 s" in page and "0.034 s" in page
    assert "2026-01-01 00:00:00.500 UTC" in page and "override SURVIVAL" in page
    assert "caller heard nothing" in page and "callee heard 1000 Hz" in page
    assert "1002" in page  # the registration that did not carry over
    assert "lifeline trunk status" in page  # the 503's fix
    # What came from outside (a SIP reason) is escaped, never markup.
    assert "<b>Trunk</b>" not in page and "&lt;b&gt;Trunk&lt;/b&gt;" in page


def test_the_json_report_reads_back_into_the_same_result() -> None:
    result = failed_result()
    data = json.loads(render_json(result))
    assert data["passed"] is False and data["state"] == "failed"
    assert DrillResult.from_dict(data) == result


def test_reports_are_private_files_in_a_private_directory(tmp_path: Path) -> None:
    directory = tmp_path / "data" / "drills"
    paths = write_reports(directory, failed_result())
    assert set(paths) == {"json", "html"}
    for path in paths.values():
        assert stat.S_IMODE(Path(path).stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) & 0o027 == 0
    assert json.loads(Path(paths["json"]).read_text())["reports"] == paths


def test_report_ids_are_times_and_nothing_else_names_a_file() -> None:
    assert new_id(T0) == "20260101T000000Z"
    assert new_id(T0, "20260101T000000Z") == "20260101T000000Z-1"
    assert new_id(T0, "20260101T000000Z-1") == "20260101T000000Z-2"
    assert new_id(T0 + 1, "20260101T000000Z-1") == "20260101T000001Z"
    with pytest.raises(ValueError, match="not a drill id"):
        report_paths(Path("/tmp"), "../../etc/passwd")


@pytest.mark.parametrize(
    ("call", "outcome", "fix"),
    [
        (CallTest("extension", "1901", "1902", 404, "Not Found"), Outcome.FAIL, "import the test extension"),
        (CallTest("extension", "1901", "1902", error="the callee could not register"), Outcome.FAIL, "credentials"),
        (CallTest("trunk", "1901", "+4930123456", 404, "Not Found"), Outcome.FAIL, "[trunk] modems"),
        (CallTest("emergency_test", "1901", "933", 484, "Address Incomplete"), Outcome.FAIL, "emergency_test_number"),
        (CallTest("trunk", "1901", "+4930123456", 200, "OK", True), Outcome.PASS, None),
    ],
)
def test_each_failed_test_call_says_what_to_do(call: CallTest, outcome: Outcome, fix: str | None) -> None:
    check = call_check(call)
    assert check.outcome is outcome
    if fix is None:
        assert check.fix is None
    else:
        assert check.fix is not None and fix in check.fix


def test_the_emergency_test_number_is_let_through_for_the_drill_caller_only() -> None:
    cfg = config.parse(
        {"trunk": {"country": "DE"}, "drill": {"caller": "1901", "callee": "1902", "emergency_test_number": "933"}}
    )
    policy = policy_from(cfg.trunk, cfg.drill)
    allowed = decide(policy, "1901", "933")
    assert (allowed.allowed, allowed.emergency, allowed.rule) == (True, False, "drill-test-number")
    assert not decide(policy, "1001", "933").allowed  # anybody else: an incomplete number, as before
    assert not decide(policy_from(cfg.trunk), "1901", "933").allowed  # no drill config: nothing special


def test_the_emergency_test_number_may_never_be_a_real_emergency_number() -> None:
    with pytest.raises(ConfigError, match="is a real emergency number in DE"):
        config.parse({"drill": {"caller": "1901", "callee": "1902", "emergency_test_number": "112"}})
    with pytest.raises(ConfigError, match="caller and callee go together"):
        config.parse({"drill": {"caller": "1901"}})
