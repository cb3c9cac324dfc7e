"""Phone numbers by libphonenumber (pure): each country's emergency numbers, and what kind of number was dialled.

One source for every part of Lifeline that asks "is this an emergency call?" (the trunk's dial plan,
Kamailio's routing, the call records): libphonenumber's short-number metadata plus the numbers the
config adds. No table of numbers is kept by hand here; the data updates with the `phonenumbers` package.
"""

from __future__ import annotations

import enum
import functools
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType, ShortNumberCost, ValidationResult, shortnumberinfo

# Countries Lifeline can be configured for: libphonenumber has both their numbering plan and their short numbers.
REGIONS: frozenset[str] = frozenset(phonenumbers.SUPPORTED_REGIONS) & frozenset(shortnumberinfo.SUPPORTED_SHORT_REGIONS)

_DIAL_CHARS = re.compile(r"[\s\-./()]")
_SHORT_CODE = re.compile(r"[0-9]{2,8}")


class NumberShapeError(ValueError):
    """The dialled string is not a number, or too short to be one (the phone may still send more digits)."""


class NumberType(enum.StrEnum):
    """What kind of number was dialled: libphonenumber's number types, and short codes by their cost."""

    FIXED_LINE = "fixed_line"
    MOBILE = "mobile"
    FIXED_LINE_OR_MOBILE = "fixed_line_or_mobile"  # NANP and others cannot tell the two apart
    TOLL_FREE = "toll_free"
    PREMIUM_RATE = "premium_rate"
    SHARED_COST = "shared_cost"
    VOIP = "voip"
    PERSONAL_NUMBER = "personal_number"
    PAGER = "pager"
    UAN = "uan"
    VOICEMAIL = "voicemail"
    SHORT_CODE = "short_code"  # a short number libphonenumber knows but whose price is standard or unknown
    UNKNOWN = "unknown"


_FROM_LIBRARY: dict[int, NumberType] = {
    PhoneNumberType.FIXED_LINE: NumberType.FIXED_LINE,
    PhoneNumberType.MOBILE: NumberType.MOBILE,
    PhoneNumberType.FIXED_LINE_OR_MOBILE: NumberType.FIXED_LINE_OR_MOBILE,
    PhoneNumberType.TOLL_FREE: NumberType.TOLL_FREE,
    PhoneNumberType.PREMIUM_RATE: NumberType.PREMIUM_RATE,
    PhoneNumberType.SHARED_COST: NumberType.SHARED_COST,
    PhoneNumberType.VOIP: NumberType.VOIP,
    PhoneNumberType.PERSONAL_NUMBER: NumberType.PERSONAL_NUMBER,
    PhoneNumberType.PAGER: NumberType.PAGER,
    PhoneNumberType.UAN: NumberType.UAN,
    PhoneNumberType.VOICEMAIL: NumberType.VOICEMAIL,
}
_SHORT_BY_COST: dict[int, NumberType] = {
    ShortNumberCost.TOLL_FREE: NumberType.TOLL_FREE,
    ShortNumberCost.PREMIUM_RATE: NumberType.PREMIUM_RATE,
}


@dataclass(frozen=True)
class Classified:
    """A dialled number as libphonenumber sees it from the configured country."""

    type: NumberType
    national: bool  # in the configured country (a NANP number of another region is not)
    dial: str  # what the modem dials: E.164 for full numbers, the digits as dialled for short codes
    region: str | None = None  # the number's own region, when libphonenumber knows it


def clean(dialled: str) -> str:
    """Drop the separators people type and a tel: scheme; NumberShapeError (not echoing it) for anything else."""
    number = _DIAL_CHARS.sub("", dialled)
    number = number.removeprefix("tel:")
    if not re.fullmatch(r"\+?[0-9*#]+", number):
        raise NumberShapeError("not a phone number (digits, * # and a leading + only)")
    return number


def check_region(region: str) -> str:
    """The region's ISO code in upper case; ValueError if libphonenumber lacks its numbering plan or short numbers."""
    code = region.upper()
    if code not in REGIONS:
        raise ValueError("not a country libphonenumber knows numbers and emergency numbers of (ISO 3166 code like DE)")
    return code


@functools.cache
def library_emergency_numbers(region: str) -> tuple[str, ...]:
    """Every number libphonenumber's short-number data calls an emergency number in region, shortest first."""
    metadata = phonenumbers.PhoneMetadata.short_metadata_for_region(check_region(region))
    desc = metadata.emergency if metadata is not None else None
    if desc is None or desc.national_number_pattern is None:
        return ()
    pattern = re.compile(desc.national_number_pattern)
    lengths = desc.possible_length or range(2, 7)  # every region states them; the range is the metadata's span
    found = []
    for length in sorted(set(lengths)):
        # The pattern narrows the candidates; libphonenumber's own predicate has the last word.
        for digits in map("".join, itertools.product("0123456789", repeat=length)):
            if pattern.fullmatch(digits) and shortnumberinfo.is_emergency_number(digits, region):
                found.append(digits)
    return tuple(found)


def emergency_numbers(region: str, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The emergency numbers of region: libphonenumber's plus the configured extras, shortest first, no duplicates."""
    numbers = {*library_emergency_numbers(region), *extra}
    return tuple(sorted(numbers, key=lambda n: (len(n), n)))


def emergency_pattern(numbers: Iterable[str]) -> str:
    """An anchored regular expression (POSIX ERE and Python alike) matching exactly these numbers."""
    listed = sorted(set(numbers), key=lambda n: (len(n), n))
    for number in listed:
        if not _SHORT_CODE.fullmatch(number):
            raise ValueError(f"{number!r} is not an emergency short code (2 to 8 digits)")
    return "^(" + "|".join(listed) + ")$" if listed else "^$.^"  # an empty list matches nothing


def emergency_code(dialled: str, region: str, numbers: Iterable[str]) -> str | None:
    """The emergency number a call to dialled reaches in region, or None.

    Exact numbers of the list first. A longer string that libphonenumber says connects to an
    emergency number (DE 1120: exchanges route on the first digits) is that emergency number: a
    mobile network recognises only the exact digits, so we dial those rather than refuse the call.
    """
    listed = set(numbers)
    if dialled in listed:
        return dialled
    if not dialled.isdigit() or not shortnumberinfo.connects_to_emergency_number(dialled, region):
        return None
    with_prefix = [n for n in listed if dialled.startswith(n)]
    if not with_prefix or _is_valid_full_number(dialled, region):
        return None  # a real subscriber number that happens to start like one is not an emergency call
    return max(with_prefix, key=len)


def _is_valid_full_number(dialled: str, region: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(dialled, region))
    except NumberParseException:
        return False


def classify(dialled: str, region: str) -> Classified:
    """What kind of number dialled is, seen from region (emergency numbers are the caller's to check first).

    NumberShapeError when it is no number or too short to be one (a local number without its area code).
    Service codes with * or # (USSD, call forwarding such as **21*…#) are UNKNOWN: they change the SIM's
    settings or cost money, and no dial plan should pass them.
    """
    number = clean(dialled)
    if "*" in number or "#" in number:
        return Classified(NumberType.UNKNOWN, national=True, dial=number)
    try:
        parsed = phonenumbers.parse(number, region)
    except NumberParseException as err:
        raise NumberShapeError(f"not a phone number ({err})") from None
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if phonenumbers.is_valid_number(parsed):
        own = phonenumbers.region_code_for_number(parsed)
        kind = _FROM_LIBRARY.get(phonenumbers.number_type(parsed), NumberType.UNKNOWN)
        return Classified(kind, national=own == region, dial=e164, region=own)
    if not number.startswith("+") and shortnumberinfo.is_valid_short_number_for_region(parsed, region):
        cost = shortnumberinfo.expected_cost_for_region(parsed, region)
        return Classified(_SHORT_BY_COST.get(cost, NumberType.SHORT_CODE), national=True, dial=number, region=region)
    home = phonenumbers.country_code_for_region(region)
    reason = phonenumbers.is_possible_number_with_reason(parsed)
    if parsed.country_code == home and reason in (ValidationResult.TOO_SHORT, ValidationResult.IS_POSSIBLE_LOCAL_ONLY):
        raise NumberShapeError("too short (a national number needs its area code)")
    return Classified(NumberType.UNKNOWN, national=parsed.country_code == home, dial=e164)
