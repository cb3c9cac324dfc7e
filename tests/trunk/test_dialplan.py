"""The trunk's call rules: number types from libphonenumber, reach, emergency numbers, limits; and the modem pool."""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers
import pytest
import structlog
from phonenumbers import PhoneNumberType

from gateway.numbering import NumberShapeError, NumberType, classify
from gateway.trunk.dialplan import DEFAULT_TYPES, Policy, Reach, Usage, allowed_types, decide
from gateway.trunk.limits import TrunkGuard
from gateway.trunk.link import LIMITED_SERVICE, LinkState
from gateway.trunk.pool import ModemPool, NoModemError

NATIONAL_ONLY = Policy(region="DE", reach={"1002": Reach.NATIONAL, "1003": Reach.EMERGENCY})


@pytest.mark.parametrize(
    ("dialled", "region", "kind", "national", "dial"),
    [
        ("030 1234567", "DE", NumberType.FIXED_LINE, True, "+49301234567"),
        ("+49 (30) 123-4567", "DE", NumberType.FIXED_LINE, True, "+49301234567"),
        ("0151/12345678", "DE", NumberType.MOBILE, True, "+4915112345678"),
        ("0800 1234567", "DE", NumberType.TOLL_FREE, True, "+498001234567"),
        ("01805 123456", "DE", NumberType.SHARED_COST, True, "+491805123456"),
        ("0700 12345678", "DE", NumberType.PERSONAL_NUMBER, True, "+4970012345678"),
        ("0900 1234567", "DE", NumberType.PREMIUM_RATE, True, "+499001234567"),
        ("012 12345678", "DE", NumberType.UNKNOWN, True, "+491212345678"),
        ("0044 20 7946 0018", "DE", NumberType.FIXED_LINE, False, "+442079460018"),
        ("+44 20 7946 0018", "DE", NumberType.FIXED_LINE, False, "+442079460018"),
        ("116117", "DE", NumberType.TOLL_FREE, True, "116117"),  # a short number: dialled as it is
        ("11880", "DE", NumberType.SHORT_CODE, True, "11880"),  # directory enquiries: price not known
        ("*100#", "DE", NumberType.UNKNOWN, True, "*100#"),  # USSD and call-forwarding codes never pass
        ("tel:+4930123456", "DE", NumberType.FIXED_LINE, True, "+4930123456"),
        ("1 212 555 0100", "US", NumberType.FIXED_LINE_OR_MOBILE, True, "+12125550100"),
        ("212 555 0100", "US", NumberType.FIXED_LINE_OR_MOBILE, True, "+12125550100"),
        ("011 49 30 1234567", "US", NumberType.FIXED_LINE, False, "+49301234567"),
        ("1 876 555 0100", "US", NumberType.MOBILE, False, "+18765550100"),  # +1, but Jamaica: not national
        ("02 1234 5678", "IT", NumberType.FIXED_LINE, True, "+390212345678"),
        ("06 6982 1234", "IT", NumberType.FIXED_LINE, False, "+390669821234"),  # +39, but the Vatican's range
    ],
)
def test_classify(dialled: str, region: str, kind: NumberType, national: bool, dial: str) -> None:
    number = classify(dialled, region)
    assert (number.type, number.national, number.dial) == (kind, national, dial)


@pytest.mark.parametrize(
    ("dialled", "message"),
    [
        ("call me", "not a phone number"),
        ("**21*+44900#", "not a phone number"),
        ("12", "too short"),
        ("911", "too short"),  # not Germany's: too short to be a number there
    ],
)
def test_shape_errors_never_echo_the_number(dialled: str, message: str) -> None:
    with pytest.raises(NumberShapeError, match=message) as err:
        classify(dialled, "DE")
    assert dialled not in str(err.value)


# Each of libphonenumber's types by its own name, our type of the same name (not a copy of the mapping).
LIBRARY_TYPES = {
    getattr(PhoneNumberType, kind.name): kind
    for kind in NumberType
    if kind.name in vars(PhoneNumberType) and kind.name != "UNKNOWN"
}


def library_examples() -> list[tuple[str, str, NumberType]]:
    """libphonenumber's own example number of each type in each test country (national format)."""
    cases = []
    for region in ("DE", "FR", "GB", "US", "AU"):
        for library_type, kind in LIBRARY_TYPES.items():
            example = phonenumbers.example_number_for_type(region, library_type)
            if example is not None and phonenumbers.number_type(example) == library_type:
                national = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
                cases.append((region, national, kind))
    return cases


@pytest.mark.parametrize(("region", "dialled", "kind"), library_examples())
def test_every_number_type_of_the_library_is_allowed_or_refused_by_its_type(
    region: str, dialled: str, kind: NumberType
) -> None:
    with structlog.testing.capture_logs() as logs:
        decision = decide(Policy(region=region), "1002", dialled)
    assert decision.number_type is kind
    if kind in DEFAULT_TYPES:
        assert decision.allowed and decision.rule == "allowed"
    else:
        assert (decision.allowed, decision.status, decision.rule) == (False, 403, f"number-type:{kind.value}")
        assert logs[-1]["rule"] == f"number-type:{kind.value}" and logs[-1]["number_type"] == kind.value


@pytest.mark.parametrize(
    ("dialled", "status", "rule"),
    [
        # What a fraudster dials from a national-only extension in Germany.
        ("01805 123456", 403, "number-type:shared_cost"),
        ("0700 12345678", 403, "number-type:personal_number"),
        ("012 12345678", 403, "number-type:unknown"),
        ("0900 1234567", 403, "number-type:premium_rate"),
        ("0044 20 7946 0018", 403, "international"),
        ("+44 20 7946 0018", 403, "international"),
        ("+44 909 879 0000", 403, "international"),
        ("11880", 403, "number-type:short_code"),
        ("*21*0900123456#", 403, "number-type:unknown"),
        ("**21*+44900#", 484, "number-shape"),
        # What a person dials.
        ("030 1234567", 200, "allowed"),
        ("0151 12345678", 200, "allowed"),
        ("0800 1234567", 200, "allowed"),
        ("116117", 200, "allowed"),  # the medical on-call line: free, but no emergency number
        ("112", 200, "emergency"),
        ("110", 200, "emergency"),
    ],
)
def test_a_national_only_extension_in_germany(dialled: str, status: int, rule: str) -> None:
    with structlog.testing.capture_logs() as logs:
        decision = decide(NATIONAL_ONLY, "1002", dialled)
    assert (decision.status, decision.rule) == (status, rule)
    assert decision.allowed is (status == 200)
    if status != 200:
        (line,) = logs
        assert (line["event"], line["rule"], line["extension"]) == ("trunk call refused", rule, "1002")
        assert line["answer"].startswith(str(status))


def test_reach_blocked_ranges_and_configured_types() -> None:
    assert decide(NATIONAL_ONLY, "1003", "030 1234567").reason == "Emergency calls only for this extension"
    assert decide(NATIONAL_ONLY, "1003", "112").emergency
    abroad = Policy(region="DE", reach={"1001": Reach.INTERNATIONAL})
    assert decide(abroad, "1001", "0044 20 7946 0018").number == "+442079460018"
    # Abroad, the foreign country's own ranges count: a British premium number stays refused.
    assert decide(abroad, "1001", "+44 909 879 0000").rule == "number-type:premium_rate"
    blocked = Policy(region="DE", blocked=("+49151",))
    assert decide(blocked, "1001", "0151 12345678").reason == "Number range blocked"
    shared = Policy(region="DE", allowed_types=allowed_types([NumberType.SHARED_COST], [NumberType.TOLL_FREE]))
    assert decide(shared, "1001", "01805 123456").allowed
    assert decide(shared, "1001", "0800 1234567").rule == "number-type:toll_free"


@pytest.mark.parametrize(
    ("usage", "status", "rule"),
    [
        (Usage(minutes_today=59.5), 200, "allowed"),
        (Usage(minutes_today=60), 403, "daily-minutes"),
        (Usage(calls_last_minute=2), 200, "allowed"),
        (Usage(calls_last_minute=3), 403, "calls-per-minute"),
        (Usage(concurrent=1), 200, "allowed"),
        (Usage(concurrent=2), 486, "concurrent-calls"),
    ],
)
def test_limits_refuse_ordinary_calls_never_emergency_calls(usage: Usage, status: int, rule: str) -> None:
    limited = Policy(region="DE", daily_minutes=60, calls_per_minute=3, concurrent_calls=2)
    decision = decide(limited, "1001", "030 1234567", usage)
    assert (decision.status, decision.rule, decision.limit) == (status, rule, status != 200)
    spent = Usage(minutes_today=1e9, calls_last_minute=1000, concurrent=1000)
    strict = Policy(region="DE", reach={"1001": Reach.EMERGENCY}, blocked=("+",), allowed_types=frozenset())
    for policy in (limited, strict):
        assert decide(policy, "1001", "112", spent).emergency


def test_guard_counts_a_minute_of_calls_and_announces_each_rule_once_in_a_while() -> None:
    now = [1000.0]
    guard = TrunkGuard(monotonic=lambda: now[0], wall=lambda: now[0] + 5e8, quiet_s=600)
    for _ in range(3):
        guard.started("1001")
    guard.started("1002")
    assert guard.usage("1001", 1.5, 1) == Usage(minutes_today=1.5, calls_last_minute=3, concurrent=1)
    now[0] += 61
    assert guard.usage("1001", 0, 0).calls_last_minute == 0
    refused = decide(Policy(region="DE", calls_per_minute=1), "1001", "030 1234567", Usage(calls_last_minute=1))
    first = guard.tripped("1001", refused)
    assert first is not None and first["rule"] == "calls-per-minute" and first["number"] == "**********67"
    assert guard.tripped("1001", refused) is None  # a fraud run trips thousands of times: one alert
    now[0] += 1
    assert guard.tripped("1002", refused) is not None
    now[0] += 601
    assert guard.tripped("1001", refused) is not None
    assert [e["extension"] for e in guard.since(first["at"])] == ["1002", "1001"]


@dataclass
class FakeModem:
    """A pool member: a modem's name, link state, call and minutes, as the pool sees them."""

    name: str
    link: LinkState = LinkState.READY
    busy: bool = False
    emergency_call: bool = False
    seconds_today: float = 0.0

    @property
    def emergency_capable(self) -> bool:
        """READY, or limited service: the driver's rule."""
        return self.link is LinkState.READY or self.link in LIMITED_SERVICE


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
