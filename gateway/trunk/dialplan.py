"""Number normalisation (E.164 ↔ national) and the rules that decide who may call what (pure)."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import structlog

log = structlog.get_logger("trunk.dialplan")


@dataclass(frozen=True)
class Country:
    """What numbering rules a country has (ITU-T E.164 assignments, national plans)."""

    iso: str
    calling_code: str
    trunk_prefix: str
    international_prefix: str
    emergency: tuple[str, ...]
    premium: tuple[str, ...] = ()  # E.164 prefixes of premium-rate and shared-cost ranges
    national_length: int | None = None  # NANP: ten digits dialled without the 1 are national too


COUNTRIES: dict[str, Country] = {
    c.iso: c
    for c in (
        Country("DE", "49", "0", "00", ("112", "110", "116117"), ("+49900", "+49137", "+49118", "+4919")),
        Country("AT", "43", "0", "00", ("112", "122", "133", "144", "140", "141"), ("+43900", "+43930", "+43939")),
        Country("CH", "41", "0", "00", ("112", "117", "118", "144", "1414", "143"), ("+41900", "+41901", "+41906")),
        Country("FR", "33", "0", "00", ("112", "15", "17", "18", "114", "115", "119", "191", "196", "197"), ("+3389",)),
        Country("NL", "31", "0", "00", ("112",), ("+31900", "+31906", "+31909")),
        Country("IT", "39", "", "00", ("112", "113", "115", "118", "1530"), ("+39899", "+39892", "+39894")),
        Country(
            "ES", "34", "", "00", ("112", "091", "092", "061", "062", "080", "085"), ("+34803", "+34806", "+34807")
        ),
        Country("GB", "44", "0", "00", ("112", "999", "111"), ("+4490", "+4491", "+4498", "+4487")),
        Country("US", "1", "1", "011", ("911", "112"), ("+1900", "+1976"), national_length=10),
    )
}

_DIAL_CHARS = re.compile(r"[\s\-./()]")


def clean(dialled: str) -> str:
    """Drop the separators people type; ValueError if anything but digits and a leading + is left."""
    number = _DIAL_CHARS.sub("", dialled)
    if number.startswith("tel:"):
        number = number[4:]
    if not re.fullmatch(r"\+?[0-9*#]+", number):
        raise ValueError(f"not a phone number: {dialled!r}")
    return number


def to_e164(dialled: str, country: Country) -> str:
    """'030 1234567' → '+49301234567' in DE; '0044…' → '+44…'; '+…' kept. ValueError if impossible."""
    number = clean(dialled)
    if number.startswith("+"):
        e164 = number
    elif number.startswith(country.international_prefix):
        e164 = "+" + number[len(country.international_prefix) :]
    elif country.national_length is not None and len(number) == country.national_length:
        e164 = "+" + country.calling_code + number
    elif country.trunk_prefix and number.startswith(country.trunk_prefix):
        e164 = "+" + country.calling_code + number[len(country.trunk_prefix) :]
    elif not country.trunk_prefix:
        e164 = "+" + country.calling_code + number  # closed plans (IT, ES): dial the whole number
    else:
        raise ValueError(f"{dialled!r} needs an area code (national numbers start with {country.trunk_prefix!r})")
    digits = e164[1:]
    if not digits.isdigit() or not 7 <= len(digits) <= 15:
        raise ValueError(f"{dialled!r} is not a valid number (E.164 allows 7 to 15 digits, got {len(digits)})")
    return e164


def to_national(e164: str, country: Country) -> str:
    """'+49301234567' → '0301234567' in DE; a foreign number gets the international prefix."""
    if not e164.startswith("+"):
        raise ValueError(f"not an E.164 number: {e164!r}")
    if e164.startswith("+" + country.calling_code):
        return country.trunk_prefix + e164[1 + len(country.calling_code) :]
    return country.international_prefix + e164[1:]


class Reach(enum.IntEnum):
    """How far an extension may call through the trunk; each level includes the ones below."""

    EMERGENCY = 0
    NATIONAL = 1
    INTERNATIONAL = 2


@dataclass(frozen=True)
class Policy:
    """What the trunk allows (from the [trunk] config)."""

    country: Country
    extra_emergency: tuple[str, ...] = ()
    blocked: tuple[str, ...] = ()  # E.164 prefixes refused for everybody
    allow_premium: bool = False
    default_reach: Reach = Reach.NATIONAL
    reach: Mapping[str, Reach] = field(default_factory=dict)  # per extension
    daily_minutes: int | None = None

    @property
    def emergency_numbers(self) -> frozenset[str]:
        """112 everywhere, the country's own numbers, and any configured extras."""
        return frozenset({"112", *self.country.emergency, *self.extra_emergency})


@dataclass(frozen=True)
class Decision:
    """Whether a call may go out, what to dial, and — if refused — the SIP answer and the rule."""

    allowed: bool
    number: str  # what to dial: E.164, or the emergency short code as dialled
    emergency: bool = False
    status: int = 200
    reason: str = ""
    rule: str = ""


def decide(policy: Policy, extension: str, dialled: str, minutes_used_today: float) -> Decision:
    """Apply the rules in order: emergency (always), number shape, blocks, premium, reach, daily cap."""
    try:
        short = clean(dialled)
    except ValueError as err:
        return _refuse(extension, dialled, 484, "Address Incomplete", "number-shape", str(err))
    if short in policy.emergency_numbers:
        # Emergency calls are never refused: not by permissions, the cap, or the mode.
        return Decision(True, short, emergency=True, rule="emergency")
    try:
        e164 = to_e164(short, policy.country)
    except ValueError as err:
        return _refuse(extension, dialled, 484, "Address Incomplete", "number-shape", str(err))
    blocked = next((p for p in policy.blocked if e164.startswith(p)), None)
    if blocked is not None:
        return _refuse(extension, e164, 403, "Number range blocked", "blocked-range", f"matches {blocked}")
    premium = next((p for p in policy.country.premium if e164.startswith(p)), None)
    if premium is not None and not policy.allow_premium:
        return _refuse(extension, e164, 403, "Premium-rate numbers blocked", "premium", f"matches {premium}")
    reach = policy.reach.get(extension, policy.default_reach)
    if reach is Reach.EMERGENCY:
        return _refuse(extension, e164, 403, "Emergency calls only for this extension", "extension-reach", "")
    international = not e164.startswith("+" + policy.country.calling_code)
    if international and reach < Reach.INTERNATIONAL:
        return _refuse(extension, e164, 403, "International calls not allowed", "international", "")
    if policy.daily_minutes is not None and minutes_used_today >= policy.daily_minutes:
        return _refuse(
            extension,
            e164,
            403,
            "Daily trunk minutes used up",
            "daily-minutes",
            f"{minutes_used_today:.0f} of {policy.daily_minutes} minutes used",
        )
    return Decision(True, e164, rule="allowed")


def _refuse(extension: str, number: str, status: int, reason: str, rule: str, detail: str) -> Decision:
    log.warning(
        "trunk call refused", extension=extension, number=number, rule=rule, answer=f"{status} {reason}", detail=detail
    )
    return Decision(False, number, status=status, reason=reason, rule=rule)
