"""The drill's test calls: which to place, the spec its user agent runs, and what its events say."""

from __future__ import annotations

import ipaddress
from typing import Any

from gateway.config import Config, DrillConfig
from gateway.drill.checks import hz
from gateway.drill.model import CallTest

TONES = {"caller": 1000, "callee": 2000}  # each side of the test call plays its own and listens for the other's
UA_SLACK_S = 20.0  # the drill UA's start, registration and shutdown, besides its calls
CALL_SLACK_S = 10.0  # per call: setup, the tones settling, the hang-up


def sip_host(listen: str) -> tuple[str, str]:
    """(address the drill UA binds, host part for SIP URIs) for Kamailio's listen address."""
    address = ipaddress.ip_address(listen)
    if address.is_unspecified:
        address = ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
    return str(address), f"[{address}]" if address.version == 6 else str(address)


def credentials(row: dict[str, Any], algorithm: str) -> dict[str, str]:
    """A test extension's digest credentials for the UA, in the configured algorithm."""
    sha = algorithm == "SHA-256"
    return {
        "number": str(row["number"]),
        "user": str(row["auth_user"]),
        "realm": str(row["realm"]),
        "ha1": str(row["ha1_sha256"] if sha else row["ha1"]),
    }


def planned_calls(drill: DrillConfig, callee_known: bool, emergency_test: bool) -> list[dict[str, Any]]:
    """The calls to place: to the callee (with audio), the trunk number, the emergency test number."""
    calls: list[dict[str, Any]] = []
    if callee_known and drill.callee is not None:
        calls.append({"kind": "extension", "to": drill.callee, "audio": True})
    if drill.trunk_number:
        calls.append({"kind": "trunk", "to": drill.trunk_number})
    if emergency_test and drill.emergency_test_number:
        calls.append({"kind": "emergency_test", "to": drill.emergency_test_number})
    return calls


def ua_spec(config: Config, port: int, rows: dict[str, dict[str, Any]], calls: list[dict[str, Any]]) -> dict[str, Any]:
    """What the drill's UA is given on stdin: where Kamailio is, the test extensions' digests, the calls."""
    drill = config.drill
    assert drill.caller is not None and drill.callee is not None
    host, uri_host = sip_host(config.sip.listen)
    target = f"sip:{uri_host}:{port}"
    algorithm = config.sip.auth_algorithm
    return {
        "host": host,
        "domain": uri_host,
        "registrar": target,
        "proxy": f"{target};lr",
        "algorithm": algorithm,
        "caller": credentials(rows[drill.caller], algorithm),
        "callee": credentials(rows[drill.callee], algorithm) if drill.callee in rows else None,
        "calls": calls,
        "tones": TONES,
        "listen_s": drill.listen_s,
        "call_timeout_s": drill.call_timeout_s,
    }


def time_limit(drill: DrillConfig, calls: int) -> float:
    """How long the UA may take for its calls."""
    return UA_SLACK_S + calls * (drill.call_timeout_s + drill.listen_s + CALL_SLACK_S)


def call_from_event(event: dict[str, Any], caller: str) -> CallTest | None:
    """The test call a UA "call" event reports; None for other events."""
    if event.get("event") != "call":
        return None
    return CallTest(
        kind=str(event["kind"]),
        caller=caller,
        to=str(event["to"]),
        code=event.get("code"),
        reason=str(event.get("reason") or ""),
        answered=bool(event.get("answered")),
        call_id=str(event.get("call_id") or ""),
        audio=event["audio"] if isinstance(event.get("audio"), dict) else None,
        error=event.get("error"),
    )


def event_note(event: dict[str, Any]) -> str | None:
    """The timeline's line for a UA event as it comes; None for events it does not show."""
    kind = event.get("event")
    if kind == "registered":
        return f"test callee {event.get('extension')} registered locally: {event.get('code')}"
    if kind == "call":
        answer = f"{event.get('code') or ''} {event.get('reason') or ''}".strip() or str(event.get("error"))
        audio = event.get("audio")
        heard = ""
        if isinstance(audio, dict):
            sides = ", ".join(
                f"{side} heard {hz(audio.get(side, {}).get('heard_hz'))}" for side in ("callee", "caller")
            )
            heard = f"; {sides}"
        return f"{event.get('kind')} call to {event.get('to')}: {answer}{heard}"
    return None
