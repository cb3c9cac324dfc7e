"""The agent's pure parts: SIM PIN sources, the policy from config, the minutes ledger, and config errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import TrunkConfig, TrunkModemConfig, parse
from gateway.errors import ConfigError
from gateway.trunk.agent.legs import request_user
from gateway.trunk.agent.model import MinutesLedger, read_pin
from gateway.trunk.dialplan import Reach, policy_from
from gateway.trunk.errors import TrunkError
from gateway.trunk.supervisor import link_event_message


def test_pin_from_file_or_env_never_echoed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text("4321\n")
    assert read_pin(TrunkModemConfig(name="m", family="quectel", sim_pin_file=pin_file)) == "4321"
    monkeypatch.setenv("LTE_PIN", "98765")
    assert read_pin(TrunkModemConfig(name="m", family="quectel", sim_pin_env="LTE_PIN")) == "98765"
    assert read_pin(TrunkModemConfig(name="m", family="quectel")) is None
    pin_file.write_text("12ab34\n")
    with pytest.raises(TrunkError) as bad:
        read_pin(TrunkModemConfig(name="m", family="quectel", sim_pin_file=pin_file))
    assert "12ab34" not in str(bad.value) and "4 to 8 digits" in str(bad.value)
    with pytest.raises(TrunkError, match=r"trunk.modems\[m\].sim_pin_file"):
        read_pin(TrunkModemConfig(name="m", family="quectel", sim_pin_file=tmp_path / "missing"))


def test_policy_from_config() -> None:
    policy = policy_from(
        TrunkConfig(country="fr", reach={"1001": "international"}, default_reach="emergency", daily_minutes=30)
    )
    assert policy.region == "FR" and "15" in policy.emergency_numbers
    assert policy.reach["1001"] is Reach.INTERNATIONAL and policy.default_reach is Reach.EMERGENCY


def test_minutes_ledger_survives_a_restart(tmp_path: Path) -> None:
    ledger = MinutesLedger(tmp_path / "minutes.json")
    ledger.add(90)
    assert MinutesLedger(tmp_path / "minutes.json").minutes_today() == pytest.approx(1.5)


def test_request_uri_user() -> None:
    assert request_user("INVITE sip:0301234567@127.0.0.1:5060 SIP/2.0\r\nVia: x\r\n") == "0301234567"
    assert request_user("INVITE sip:+4930123@host;user=phone SIP/2.0\r\n") == "+4930123"


def test_trunk_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"trunk.modems.0.family"):
        parse({"trunk": {"extension": "1009", "modems": [{"name": "m0", "family": "nokia"}]}})
    with pytest.raises(ConfigError, match=r"trunk\.extension is required"):
        parse({"trunk": {"modems": [{"name": "m0", "family": "quectel"}]}})
    with pytest.raises(ConfigError, match=r"trunk.emergency_numbers .*not an emergency short code"):
        parse({"trunk": {"emergency_numbers": ["+112"]}})


def test_status_lines_show_modem_problems_and_calls() -> None:
    from gateway.trunk.cli import status_lines

    assert status_lines(None) == []
    lines = status_lines(
        {
            "state": "running",
            "pid": 42,
            "restarts": 0,
            "registered": 200,
            "extension": "1009",
            "minutes_today": 3.5,
            "modems": [
                {
                    "name": "lte0",
                    "state": "registering",
                    "operator": "Lab",
                    "access": "LTE",
                    "signal": {"dbm": -67},
                    "problem": "registered on LTE without VoLTE: …",
                    "resets": 0,
                },
                {"name": "lte1", "state": "ready", "resets": 2, "realignments": 3},
            ],
            "calls": [{"direction": "out", "number": "112", "modem": "lte0", "emergency": True, "active": True}],
        }
    )
    text = "\n".join(lines)
    assert "SIP registration 200 as 1009" in text and "lte0: REGISTERING, Lab (LTE), -67 dBm" in text
    assert "without VoLTE" in text and "emergency call out 112 on lte0 (active)" in text
    assert "lte1: READY, 2 resets, audio realigned 3×" in text  # lost PCM bytes, healed, are shown


def test_supervisor_view_for_the_trunk_led(tmp_path: Path) -> None:
    from gateway.store import Store
    from gateway.trunk.supervisor import AgentState, TrunkSupervisor

    store = Store(tmp_path / "db.sqlite")
    try:
        supervisor = TrunkSupervisor(parse({}), None, store)
        assert not supervisor.view().usable  # not running yet
        supervisor.state = AgentState.RUNNING
        supervisor.last_status = {
            "modems": [
                {"family": "quectel", "state": "ready", "signal": {"bars": 4}},
                {"family": "simcom", "state": "reset", "signal": {"bars": 5}},
            ]
        }
        view = supervisor.view()
        assert (view.kind, view.usable, view.bars) == ("gsm", True, 4)
        supervisor.last_status = {"modems": [{"family": "v253", "state": "ready", "signal": None}]}
        assert supervisor.view().kind == "analog" and supervisor.view().usable
    finally:
        store.close()


def test_modem_falls_and_recoveries_read_plainly_on_the_status_page() -> None:
    fall = {"modem": "lte0", "old": "ready", "new": "reset", "reason": "AT+CSQ: no answer twice", "problem": None}
    assert link_event_message(fall) == "modem lte0: ready → reset (AT+CSQ: no answer twice)"
    gone = {**fall, "new": "registering", "problem": "no network: searching"}
    assert link_event_message(gone) == "modem lte0: ready → registering (no network: searching)"
    back = {"modem": "lte0", "old": "registering", "new": "ready", "reason": "registered on Lab Mobile"}
    assert link_event_message(back) == "modem lte0: registering → ready"
