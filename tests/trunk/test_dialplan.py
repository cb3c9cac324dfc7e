"""Number normalisation and the trunk's call rules."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import structlog

from gateway.trunk.dialplan import COUNTRIES, Policy, Reach, decide, to_e164, to_national
from gateway.trunk.driver import LinkState
from gateway.trunk.pool import ModemPool, NoModemError

DE, US, IT = COUNTRIES["DE"], COUNTRIES["US"], COUNTRIES["IT"]


@pytest.mark.parametrize(
    ("dialled", "country", "e164"),
    [
        ("030 1234567", DE, "+49301234567"),
        ("+49 (30) 123-4567", DE, "+49301234567"),
        ("0044 20 7946 0018", DE, "+442079460018"),
        ("0151/12345678", DE, "+4915112345678"),
        ("1 212 555 0100", US, "+12125550100"),
        ("212 555 0100", US, "+12125550100"),
        ("011 49 30 1234567", US, "+49301234567"),
        ("06 6982 1234", IT, "+390669821234"),
    ],
)
def test_to_e164(dialled: str, country: object, e164: str) -> None:
    assert to_e164(dialled, country) == e164  # type: ignore[arg-type]


def test_to_national_and_errors() -> None:
    assert to_national("+49301234567", DE) == "0301234567"
    assert to_national("+442079460018", DE) == "00442079460018"
    with pytest.raises(ValueError, match="needs an area code"):
        to_e164("1234567", DE)
    with pytest.raises(ValueError, match="not a phone number: 'call me'"):
        to_e164("call me", DE)
    with pytest.raises(ValueError, match=r"E\.164 allows 7 to 15 digits"):
        to_e164("+49123", DE)


def policy(**kw: object) -> Policy:
    return Policy(country=DE, **kw)  # type: ignore[arg-type]


def test_emergency_numbers_are_always_allowed() -> None:
    strict = policy(reach={"1001": Reach.EMERGENCY}, daily_minutes=0, blocked=("+",), extra_emergency=("19222",))
    for number in ("112", "110", "19222"):
        decision = decide(strict, "1001", number, minutes_used_today=1e9)
        assert decision.allowed and decision.emergency and decision.number == number
    assert decide(policy(), "1001", "911", 0).allowed is False  # not an emergency number in DE (484: too short)


def test_international_and_premium_blocked_by_default() -> None:
    with structlog.testing.capture_logs() as logs:
        refused = decide(policy(), "1001", "0044 20 7946 0018", 0)
    assert (refused.allowed, refused.status, refused.reason) == (False, 403, "International calls not allowed")
    assert logs[-1]["rule"] == "international" and logs[-1]["extension"] == "1001"
    premium = decide(policy(), "1001", "0900 1234567", 0)
    assert (premium.status, premium.rule) == (403, "premium")
    assert decide(policy(allow_premium=True), "1001", "0900 1234567", 0).allowed
    assert decide(policy(reach={"1002": Reach.INTERNATIONAL}), "1002", "0044 20 7946 0018", 0).allowed


def test_per_extension_reach_blocked_ranges_and_daily_cap() -> None:
    rules = policy(reach={"1003": Reach.EMERGENCY}, blocked=("+49151",), daily_minutes=60)
    assert decide(rules, "1003", "030 1234567", 0).reason == "Emergency calls only for this extension"
    assert decide(rules, "1001", "0151 12345678", 0).reason == "Number range blocked"
    assert decide(rules, "1001", "030 1234567", 59.5).allowed
    capped = decide(rules, "1001", "030 1234567", 60)
    assert (capped.status, capped.rule) == (403, "daily-minutes")
    assert decide(rules, "1001", "12", 0).status == 484


@dataclass
class FakeModem:
    name: str
    link: LinkState = LinkState.READY
    busy: bool = False
    emergency_call: bool = False
    seconds_today: float = 0.0


def test_pool_least_busy_first_and_failed_skipped() -> None:
    a, b, c = FakeModem("a", seconds_today=300), FakeModem("b", seconds_today=60), FakeModem("c", LinkState.RESET)
    pool = ModemPool([a, b, c])
    assert pool.pick().member is b
    b.busy = True
    assert pool.pick().member is a
    a.busy = True
    with pytest.raises(NoModemError) as busy:
        pool.pick()
    assert busy.value.status == 486


def test_pool_emergency_takes_a_busy_modem_but_not_another_emergency() -> None:
    a, b = FakeModem("a", busy=True, emergency_call=True), FakeModem("b", busy=True)
    choice = ModemPool([a, b]).pick(emergency=True)
    assert choice.member is b and choice.preempt
    b.emergency_call = True
    with pytest.raises(NoModemError):
        ModemPool([a, b]).pick(emergency=True)


def test_pool_emergency_uses_a_modem_in_limited_service() -> None:
    sim_less = FakeModem("x", LinkState.SIM)
    assert ModemPool([sim_less]).pick(emergency=True).member is sim_less
    with pytest.raises(NoModemError) as none:
        ModemPool([sim_less]).pick()
    assert none.value.status == 503 and "x: sim" in none.value.reason
