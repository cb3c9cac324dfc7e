"""The caller stamp: who Kamailio authenticated for a trunk call, signed so that only Kamailio can write it.

Kamailio removes the header from every request it receives and writes its own after authenticating
the caller (route[CALLER_STAMP] in kamailio.cfg.tmpl). The trunk agent reads the caller from it only.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

HEADER = "X-Lifeline-Caller"

_CALLER = re.compile(r"[A-Za-z0-9_.+-]{1,64}")
_VALUE = re.compile(r"(?P<caller>[^;\s]+)\s*;\s*sig=(?P<sig>[0-9a-f]{64})")
_REQUEST_LINE = re.compile(r"[A-Z]+\s+sips?:(?P<user>[^@;>\s]+)@\S+\s+SIP/2\.0$")


@dataclass(frozen=True)
class StampedCall:
    """An INVITE's caller (as authenticated by Kamailio) and the number it dialled."""

    caller: str
    dialled: str


def signature(key: str, call_id: str, caller: str, dialled: str) -> str:
    """What Kamailio signs: this call, this caller, this number (SHA-256, as its {s.sha256})."""
    return hashlib.sha256(f"{key}:{call_id}:{caller}:{dialled}".encode()).hexdigest()


def _headers(message: str) -> tuple[str, list[tuple[str, str]]]:
    head = message.split("\r\n\r\n", 1)[0]
    lines = head.split("\r\n")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:  # a folded header continues the one before
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
        elif ":" in line:
            name, value = line.split(":", 1)
            headers.append((name.strip().lower(), value.strip()))
    return lines[0], headers


def stamped_call(message: str, key: str) -> StampedCall | None:
    """The caller Kamailio stamped on this request, or None when the stamp is missing, doubled or forged."""
    if not key:
        return None
    request_line, headers = _headers(message)
    target = _REQUEST_LINE.match(request_line.strip())
    stamps = [value for name, value in headers if name == HEADER.lower()]
    call_ids = [value for name, value in headers if name in ("call-id", "i")]
    if target is None or len(stamps) != 1 or len(call_ids) != 1:
        return None
    found = _VALUE.fullmatch(stamps[0])
    if found is None or not _CALLER.fullmatch(found["caller"]):
        return None
    expected = signature(key, call_ids[0], found["caller"], target["user"])
    if not hmac.compare_digest(expected, found["sig"]):
        return None
    return StampedCall(found["caller"], target["user"])
