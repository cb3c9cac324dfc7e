"""The rules that decide who may call what through the trunk (pure): emergency, number type, reach, limits."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import structlog

from gateway.config import DrillConfig, TrunkConfig
from gateway.numbering import (
    NumberShapeError,
    NumberType,
    check_region,
    classify,
    clean,
    emergency_code,
    emergency_numbers,
)

log = structlog.get_logger("trunk.dialplan")

# What an extension of national or international reach may call when the config changes nothing: numbers
# charged like an ordinary call from a mobile SIM, and free ones. Refused by default: premium rate, shared
# cost, personal numbers, UAN and VoIP ranges (their price from a mobile SIM is the operator's choice and
# often outside any bundle: the ranges toll fraud pays out on), pagers, voicemail access, priced short
# codes and anything libphonenumber does not know.
DEFAULT_TYPES: frozenset[NumberType] = frozenset(
    {NumberType.FIXED_LINE, NumberType.MOBILE, NumberType.FIXED_LINE_OR_MOBILE, NumberType.TOLL_FREE}
)


class Reach(enum.IntEnum):
    """How far an extension may call through the trunk; each level includes the ones below."""

    EMERGENCY = 0
    NATIONAL = 1
    INTERNATIONAL = 2


@dataclass(frozen=True)
class Policy:
    """What the trunk allows (from the [trunk] config)."""

    region: str = "DE"
    extra_emergency: tuple[str, ...] = ()
    blocked: tuple[str, ...] = ()  # E.164 prefixes refused for everybody
    allowed_types: frozenset[NumberType] = DEFAULT_TYPES
    default_reach: Reach = Reach.NATIONAL
    reach: Mapping[str, Reach] = field(default_factory=dict)  # per extension
    daily_minutes: int | None = None
    calls_per_minute: int | None = None  # per extension, emergency calls not counted
    concurrent_calls: int | None = None  # per extension
    # `lifeline drill --emergency-test`: the network's emergency test number, from the drill's caller only.
    test_number: str | None = None
    test_caller: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "region", check_region(self.region))

    @property
    def emergency_numbers(self) -> tuple[str, ...]:
        """The country's emergency numbers (libphonenumber) and any configured extras."""
        return emergency_numbers(self.region, self.extra_emergency)


def allowed_types(allow: Iterable[NumberType] = (), deny: Iterable[NumberType] = ()) -> frozenset[NumberType]:
    """The default number types with the config's additions, less its removals."""
    return (DEFAULT_TYPES | frozenset(allow)) - frozenset(deny)


def policy_from(config: TrunkConfig, drill: DrillConfig | None = None) -> Policy:
    """The dial-plan policy the [trunk] config describes (and the [drill] emergency test number)."""
    allow = (*config.allow_types, *((NumberType.PREMIUM_RATE,) if config.allow_premium else ()))
    return Policy(
        region=config.country,
        extra_emergency=config.emergency_numbers,
        blocked=config.blocked_prefixes,
        allowed_types=allowed_types(allow, config.deny_types),
        default_reach=Reach[config.default_reach.upper()],
        reach={ext: Reach[level.upper()] for ext, level in config.reach.items()},
        daily_minutes=config.daily_minutes,
        calls_per_minute=config.calls_per_minute,
        concurrent_calls=config.concurrent_calls,
        test_number=drill.emergency_test_number if drill is not None else None,
        test_caller=drill.caller if drill is not None else None,
    )


@dataclass(frozen=True)
class Usage:
    """What has been used when a call is decided: today's trunk minutes, this extension's recent and current calls."""

    minutes_today: float = 0.0
    calls_last_minute: int = 0
    concurrent: int = 0


@dataclass(frozen=True)
class Decision:
    """Whether a call may go out, what to dial, and — if refused — the SIP answer and the rule."""

    allowed: bool
    number: str  # what to dial: E.164, or a short code (emergency or other) as dialled
    emergency: bool = False
    status: int = 200
    reason: str = ""
    rule: str = ""
    number_type: NumberType | None = None

    @property
    def limit(self) -> bool:
        """Whether a usage limit (not the number) refused the call: administrators hear about these."""
        return self.rule in LIMIT_RULES


LIMIT_RULES = frozenset({"daily-minutes", "calls-per-minute", "concurrent-calls"})


def decide(policy: Policy, extension: str, dialled: str, usage: Usage | None = None) -> Decision:
    """Apply the rules in order: emergency (always), shape, blocked ranges, reach, number type, then the limits."""
    usage = usage or Usage()
    emergency = _emergency(policy, dialled)
    if emergency is not None:
        # Emergency calls are never refused: not by reach, type, the cap, a rate limit or the mode.
        return Decision(True, emergency, emergency=True, rule="emergency")
    if policy.test_number is not None and extension == policy.test_caller and dialled == policy.test_number:
        # A short code the number rules refuse; config validation keeps it from being a real emergency number.
        return Decision(True, dialled, rule="drill-test-number")
    try:
        number = classify(dialled, policy.region)
    except NumberShapeError as err:
        return _refuse(extension, dialled, 484, "Address Incomplete", "number-shape", str(err))
    kind = number.type
    blocked = next((p for p in policy.blocked if number.dial.startswith(p)), None)
    if blocked is not None:
        return _refuse(extension, number.dial, 403, "Number range blocked", "blocked-range", f"matches {blocked}", kind)
    reach = policy.reach.get(extension, policy.default_reach)
    if reach is Reach.EMERGENCY:
        reason = "Emergency calls only for this extension"
        return _refuse(extension, number.dial, 403, reason, "extension-reach", "", kind)
    if not number.national and reach < Reach.INTERNATIONAL:
        detail = f"a number of {number.region or 'another country'}"
        return _refuse(extension, number.dial, 403, "International calls not allowed", "international", detail, kind)
    if kind not in policy.allowed_types:
        reason = f"{kind.value.replace('_', ' ').capitalize()} numbers not allowed"
        return _refuse(extension, number.dial, 403, reason, f"number-type:{kind.value}", "", kind)
    if policy.daily_minutes is not None and usage.minutes_today >= policy.daily_minutes:
        detail = f"{usage.minutes_today:.0f} of {policy.daily_minutes} minutes used"
        return _refuse(extension, number.dial, 403, "Daily trunk minutes used up", "daily-minutes", detail, kind)
    if policy.calls_per_minute is not None and usage.calls_last_minute >= policy.calls_per_minute:
        detail = f"{usage.calls_last_minute} calls in the last minute (limit {policy.calls_per_minute})"
        return _refuse(extension, number.dial, 403, "Too many trunk calls", "calls-per-minute", detail, kind)
    if policy.concurrent_calls is not None and usage.concurrent >= policy.concurrent_calls:
        detail = f"{usage.concurrent} trunk calls in progress (limit {policy.concurrent_calls})"
        return _refuse(extension, number.dial, 486, "Too many trunk calls at once", "concurrent-calls", detail, kind)
    return Decision(True, number.dial, rule="allowed", number_type=kind)


def _emergency(policy: Policy, dialled: str) -> str | None:
    try:
        digits = clean(dialled)
    except NumberShapeError:
        return None
    return emergency_code(digits, policy.region, policy.emergency_numbers)


def _refuse(
    extension: str,
    number: str,
    status: int,
    reason: str,
    rule: str,
    detail: str,
    kind: NumberType | None = None,
) -> Decision:
    log.warning(
        "trunk call refused",
        extension=extension,
        number=number,
        number_type=kind.value if kind is not None else None,
        rule=rule,
        answer=f"{status} {reason}",
        detail=detail,
    )
    return Decision(False, number, status=status, reason=reason, rule=rule, number_type=kind)
