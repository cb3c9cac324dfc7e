"""The verdicts of a drill's checks: registrations carried over, each test call, its records; each with its fix."""

from __future__ import annotations

from typing import Any

from gateway.drill.model import CallTest, Check, Outcome


def registrations_check(before: list[str], carried: list[str], missing: list[str]) -> Check:
    """Whether the phones registered before the drill were served locally during it."""
    name = "registrations carried over"
    if not before:
        return Check(name, Outcome.SKIP, "no phone was registered before the drill")
    if missing:
        detail = f"{len(missing)} of {len(before)} not served locally: {', '.join(missing)}"
        fix = "those phones must use Lifeline as outbound proxy (or as backup registrar): check their SIP settings"
        return Check(name, Outcome.FAIL, detail, fix)
    return Check(name, Outcome.PASS, f"all {len(before)} served locally: {', '.join(carried)}")


def call_fix(call: CallTest) -> str:
    """The one-line fix for a test call that failed."""
    code = call.code or 0
    if call.kind == "extension":
        if call.answered:
            return (
                "audio does not flow both ways through the box: make sure nothing blocks RTP between phones "
                "(firewall, NAT settings) and that they offer PCMU or PCMA"
            )
        if call.error == "the callee could not register" or code in (401, 403, 407):
            return (
                "the test extensions' credentials were refused: import them again (`lifeline extensions import`) "
                "or let the mirror sync, and check sip.auth_algorithm"
            )
        if code == 404:
            return "Lifeline does not know the callee's number: import the test extension, or fix [drill] callee"
        if code == 480:
            return "the callee's binding was not found: check that no other device registers as the test callee"
        return "the test call did not go through locally: check `lifeline status` (kamailio) and the daemon's log"
    if code == 404:
        return "no trunk took the call: configure [trunk] modems, or remove the number from [drill]"
    if code == 503:
        return "the trunk is not available: check the modem with `lifeline trunk status` (SIM, signal, registration)"
    if code in (403, 484):
        what = (
            "[drill] emergency_test_number and caller" if call.kind == "emergency_test" else "[trunk] reach/allow_types"
        )
        return f"the trunk's dial plan refused the number: check {what} (the trunk agent reads them at start)"
    return "nobody answered the number: make sure it answers calls (an announcement or voicemail is fine)"


def hz(value: Any) -> str:
    """A tone's frequency as the report says it, "nothing" when none was heard."""
    return f"{value} Hz" if value else "nothing"


def _heard(side: str, verdict: dict[str, Any]) -> str:
    return f"{side} heard {hz(verdict.get('heard_hz'))} (expected {hz(verdict.get('expected_hz'))})"


def call_check(call: CallTest) -> Check:
    """Whether one test call passed, what it found, and the fix if not."""
    name = {"extension": "test call", "trunk": "trunk call", "emergency_test": "emergency test call"}[call.kind]
    name = f"{name} {call.caller} → {call.to}"
    answer = f"{call.code} {call.reason}".strip() if call.code else (call.reason or "no answer")
    if call.error:
        answer = f"{answer}; {call.error}" if call.code else call.error
    if not call.answered:
        return Check(name, Outcome.FAIL, f"not answered: {answer}", call_fix(call))
    if call.audio is None:
        return Check(name, Outcome.PASS, "answered (200 OK)")
    audio = call.audio
    heard = "; ".join(_heard(side, audio.get(side, {})) for side in ("callee", "caller"))
    if call.audio_ok:
        return Check(name, Outcome.PASS, f"answered; audio both ways: {heard}")
    return Check(name, Outcome.FAIL, f"answered, but audio failed: {heard}", call_fix(call))


def records_checks(answered: list[str], records: list[dict[str, Any]], sinks: list[str]) -> list[Check]:
    """Whether the answered test calls' records were captured and delivered to every sink after failback."""
    if not answered:
        return [Check("call records", Outcome.SKIP, "no answered test call to look for")]
    checks: list[Check] = []
    lost = [r["call_id"] for r in records if r["state"] != "final"]
    if lost:
        detail = f"{len(lost)} of {len(answered)} test call record(s) not captured: {', '.join(lost)}"
        fix = "records are not being captured: look for 'capture pass failed' in the daemon's log"
        checks.append(Check("call records captured", Outcome.FAIL, detail, fix))
    else:
        checks.append(Check("call records captured", Outcome.PASS, f"{len(answered)} test call record(s)"))
    if not sinks:
        detail = "no CDR sink configured: the records stay on the box (`lifeline cdr export` hands them over)"
        checks.append(Check("call records delivered", Outcome.SKIP, detail))
        return checks
    undelivered = [r for r in records if set(r["delivery"].values()) != {"delivered"}]
    if undelivered:
        states = "; ".join(f"{r['call_id']}: {r['delivery'] or 'not queued'}" for r in undelivered)
        fix = "the CDR sink did not take them: see `lifeline status` (cdr sinks, last_error) and its URL/credentials"
        checks.append(Check("call records delivered", Outcome.FAIL, states, fix))
    else:
        detail = f"delivered to {', '.join(sinks)} after failback"
        checks.append(Check("call records delivered", Outcome.PASS, detail))
    return checks
