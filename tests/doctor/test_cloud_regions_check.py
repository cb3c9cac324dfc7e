"""`lifeline doctor` with a cloud in two regions: a line per SBC; one region down warns, all down fails."""

from __future__ import annotations

from typing import Any

from gateway.config import parse
from gateway.doctor import Check, Verdict, exit_code, run_checks, text_lines
from tests.doctor.test_checks import MODEM, by_name, facts, healthy_status, probe

TWO_REGIONS = parse(
    {
        "cloud": {"sbc": ["sip:sbc-eu.example.com:5060", "sip:sbc-us.example.com:5060"], "realm": "asterisk"},
        "health": {"lan_target": "off"},
        "trunk": {"extension": "1009", "modems": [MODEM]},
    }
)


def sbc(uri: str, state: str, detail: str = "200", rtt_ms: float | None = 12.4) -> dict[str, Any]:
    return {"uri": uri, "state": state, "rtt_ms": rtt_ms if state == "up" else None, "detail": detail}


def region_status(*states: str) -> dict[str, Any]:
    uris = TWO_REGIONS.cloud.sbcs
    answered = "up" in states
    return healthy_status(
        health={
            "where": "ok" if answered else "wan",
            "probes": {"cloud-sip": probe(answered), "dns": probe(True, "2 name(s) resolved", "dns")},
            "sbcs": [sbc(uri, s, "200" if s == "up" else "no answer") for uri, s in zip(uris, states, strict=True)],
        }
    )


def test_every_cloud_region_is_checked_on_its_own_line_and_one_down_only_warns() -> None:
    healthy = run_checks(facts(region_status("up", "up"), TWO_REGIONS))
    checks = by_name(healthy)
    assert "cloud-sip" not in checks
    assert checks["cloud-sip-1"] == Check("cloud-sip-1", Verdict.PASS, "sip:sbc-eu.example.com:5060: 200, 12 ms")
    assert checks["cloud-sip-2"].verdict is Verdict.PASS and checks["cloud-sip-2"].detail.startswith("sip:sbc-us")
    assert "sbc-eu.example.com, sbc-us.example.com" in checks["cloud-dns"].detail  # every SBC's name

    # The primary region down, the secondary up: a warning with a fix, not a failure.
    one_down = run_checks(facts(region_status("down", "up"), TWO_REGIONS))
    checks = by_name(one_down)
    primary = checks["cloud-sip-1"]
    assert primary.verdict is Verdict.WARN and primary.fix
    assert "calls go through sip:sbc-us.example.com:5060" in primary.detail
    assert checks["cloud-sip-2"].verdict is Verdict.PASS
    assert exit_code(one_down, facts(region_status("down", "up"), TWO_REGIONS)) == 0
    lines = text_lines(one_down)
    assert any(line.startswith("! cloud-sip-1") for line in lines)

    # Both regions down: each fails, and the doctor with them.
    none_up = run_checks(facts(region_status("down", "down"), TWO_REGIONS))
    checks = by_name(none_up)
    assert [checks[n].verdict for n in ("cloud-sip-1", "cloud-sip-2")] == [Verdict.FAIL, Verdict.FAIL]
    assert "no region answers" in checks["cloud-sip-2"].detail
    fix = checks["cloud-sip-1"].fix
    assert fix is not None and fix.startswith("neither the cloud's SIP edge nor its API answers")
    assert exit_code(none_up, facts(region_status("down", "down"), TWO_REGIONS)) == 1


def test_a_region_not_probed_yet_asks_to_run_again_and_without_the_daemon_each_is_skipped() -> None:
    checks = by_name(run_checks(facts(region_status("unknown", "up"), TWO_REGIONS)))
    assert checks["cloud-sip-1"].verdict is Verdict.WARN and "not probed yet" in checks["cloud-sip-1"].detail
    down = by_name(run_checks(facts(None, TWO_REGIONS)))
    assert [down[n].verdict for n in ("cloud-sip-1", "cloud-sip-2")] == [Verdict.SKIP, Verdict.SKIP]
