"""One list of emergency numbers per country (libphonenumber plus config) for the dial plan, Kamailio and the records.

The expectations come from libphonenumber's own predicate over every short digit string, never from a
table typed here: the test holds whatever the installed metadata says.
"""

from __future__ import annotations

import itertools
import re
import sqlite3
from pathlib import Path

import pytest
from phonenumbers import shortnumberinfo

from gateway.cdr.acc import acc_path
from gateway.cdr.capture import Capture
from gateway.cdr.clock import BestClock, FakeClockSource
from gateway.cdr.records import ClockKind
from gateway.config import TrunkConfig, parse
from gateway.errors import ConfigError
from gateway.mirror.records import Extension
from gateway.numbering import emergency_numbers, emergency_pattern, library_emergency_numbers
from gateway.store import Store
from gateway.trunk.dialplan import Usage, decide, policy_from
from tests.cdr.test_clock import FakeHost
from tests.sip.test_render import rendered

COUNTRIES = ("DE", "FR", "GB", "US", "AU")
SPENT = Usage(minutes_today=1e9, calls_last_minute=1000, concurrent=1000)


def short_strings(max_len: int = 4) -> list[str]:
    return ["".join(d) for n in range(2, max_len + 1) for d in itertools.product("0123456789", repeat=n)]


def library_says(region: str) -> set[str]:
    return {s for s in short_strings() if shortnumberinfo.is_emergency_number(s, region)}


@pytest.mark.parametrize("region", COUNTRIES)
def test_the_list_is_what_libphonenumber_calls_emergency(region: str) -> None:
    expected = library_says(region)
    assert "112" in expected  # the brute force works: 112 is an emergency number in each of these
    assert set(library_emergency_numbers(region)) == expected
    assert TrunkConfig(country=region).emergency_list == emergency_numbers(region)


@pytest.mark.parametrize("region", COUNTRIES)
def test_each_is_dialled_as_an_emergency_call_whatever_the_limits(region: str) -> None:
    config = TrunkConfig(country=region, default_reach="emergency", daily_minutes=0, calls_per_minute=1)
    policy = policy_from(config)
    for number in library_says(region):
        decision = decide(policy, "1001", number, SPENT)
        assert (decision.allowed, decision.emergency, decision.number) == (True, True, number), number


@pytest.mark.parametrize("region", COUNTRIES)
def test_kamailio_routes_exactly_the_list_to_the_trunk(tmp_path: Path, region: str) -> None:
    text = rendered(tmp_path, {"trunk": {"country": region}}, True, None).read_text()
    (pattern,) = re.findall(r'^#!define EMERGENCY "(.*)"$', text, re.MULTILINE)
    assert pattern == emergency_pattern(emergency_numbers(region))
    # A plain alternation of digits: POSIX ERE (Kamailio's =~) and Python's re agree on it.
    assert re.fullmatch(r"\^\(\d+(\|\d+)*\)\$", pattern)
    assert {s for s in short_strings() if re.search(pattern, s)} == library_says(region)
    assert "$rU =~ EMERGENCY" in text


def capture_rig(tmp_path: Path, emergency: tuple[str, ...]) -> tuple[Store, Capture]:
    store = Store(tmp_path / "lifeline.db")
    store.replace_extensions([Extension.from_password(number="1001", auth_user="1001", realm="r", password="pw")], "t")
    clock = BestClock(FakeHost(), [FakeClockSource(ClockKind.NTP, lambda: 1_764_064_800.0)])
    capture = Capture(store, clock, ["webhook"], emergency=emergency)
    capture.prepare()
    return store, capture


def record_direction(store: Store, capture: Capture, dialled: str) -> str:
    """A phone's call to dialled as Kamailio's acc writes it (no trunk details): the record's direction."""
    wall = 1_764_064_800.0
    with sqlite3.connect(acc_path(store.path)) as acc:
        for method, code in (("INVITE", 100), ("INVITE", 200), ("BYE", 200)):
            wall += 1
            acc.execute(
                "INSERT INTO acc (method, from_tag, to_tag, callid, sip_code, sip_reason, time_attr, src_user,"
                " dst_user, start_time, cdr_mode) VALUES (?, 'ft', 'tt', ?, ?, '', ?, '1001', ?, ?, 'survival')",
                [method, f"call-{dialled}", str(code), wall, dialled, f"{wall:.6f}"],
            )
    capture.step()
    with store.read() as conn:
        (direction,) = conn.execute("SELECT direction FROM cdrs WHERE call_id = ?", [f"call-{dialled}"]).fetchone()
    return str(direction)


@pytest.mark.parametrize("region", COUNTRIES)
def test_the_call_records_mark_each_as_emergency(tmp_path: Path, region: str) -> None:
    store, capture = capture_rig(tmp_path, TrunkConfig(country=region).emergency_list)
    for number in sorted(library_says(region)):
        assert record_direction(store, capture, number) == "emergency", number
    assert record_direction(store, capture, "0301234567") == "outbound"


def test_116117_in_germany_is_the_medical_line_not_an_emergency_number(tmp_path: Path) -> None:
    says = shortnumberinfo.is_emergency_number("116117", "DE")
    config = TrunkConfig(country="DE")
    assert ("116117" in config.emergency_list) is says
    decision = decide(policy_from(config), "1001", "116117")
    assert decision.allowed and decision.emergency is says  # allowed as a free national number
    store, capture = capture_rig(tmp_path, config.emergency_list)
    assert record_direction(store, capture, "116117") == ("emergency" if says else "outbound")
    assert bool(re.search(emergency_pattern(config.emergency_list), "116117")) is says


def test_configured_extras_join_the_one_list_everywhere(tmp_path: Path) -> None:
    config = TrunkConfig(country="DE", emergency_numbers=("19222",), default_reach="emergency")
    assert "19222" in config.emergency_list and set(library_says("DE")) <= set(config.emergency_list)
    assert decide(policy_from(config), "1001", "19222", SPENT).emergency
    text = rendered(tmp_path, {"trunk": {"country": "DE", "emergency_numbers": ["19222"]}}, True, None).read_text()
    assert emergency_pattern(config.emergency_list) in text
    store, capture = capture_rig(tmp_path, config.emergency_list)
    assert record_direction(store, capture, "19222") == "emergency"


def test_a_number_that_connects_to_an_emergency_number_dials_it() -> None:
    # German exchanges connect 1120 to 112; a mobile network needs the exact digits.
    assert shortnumberinfo.connects_to_emergency_number("1120", "DE")
    decision = decide(policy_from(TrunkConfig(country="DE")), "1001", "1120", SPENT)
    assert (decision.emergency, decision.number) == (True, "112")
    # A subscriber number that merely starts like one is dialled as what it is.
    assert not decide(policy_from(TrunkConfig(country="DE")), "1001", "0112345678").emergency


@pytest.mark.parametrize(
    ("trunk", "key"),
    [
        ({"country": "XX"}, "trunk.country"),
        ({"emergency_numbers": ["+112"]}, "trunk.emergency_numbers"),
        ({"allow_types": ["premium"]}, "trunk.allow_types.0"),
        ({"deny_types": ["mobile", 3]}, "trunk.deny_types.1"),
        ({"calls_per_minute": 0}, "trunk.calls_per_minute"),
        ({"concurrent_calls": "two"}, "trunk.concurrent_calls"),
    ],
)
def test_bad_policy_config_names_the_key(trunk: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(key)):
        parse({"trunk": trunk})
