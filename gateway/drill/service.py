"""`lifeline drill`: a safe disaster-recovery test while the office works, and the report an auditor keeps.

One drill at a time, an explicit state machine: SNAPSHOT (mode, registrations, record backlog) →
FAILING_OVER (override SURVIVAL, timed until Kamailio serves locally) → CHECKING (the registrations
are still served; test calls with audio both ways, in a child process) → FAILING_BACK (the override
as it was, timed until NORMAL) → CHECKING_RECORDS (the test calls' records delivered) → DONE or
FAILED. Whatever breaks, the override goes back; a restart in the middle puts it back at start.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from typing import Any, Protocol

import structlog

from gateway.cdr.service import CdrService
from gateway.config import Config
from gateway.core.alerts import Alert, AlertQueue
from gateway.core.mode import Mode, ModeController, Override
from gateway.drill.model import CallTest, Check, DrillResult, DrillState, Moment, Outcome
from gateway.drill.report import REPORT_ID, new_id, write_reports
from gateway.drill.runner import DrillError, run_user_agent
from gateway.errors import RpcError
from gateway.sip.supervisor import KamailioSupervisor
from gateway.store import Store

log = structlog.get_logger("drill")

ACTIVE_KEY = "drill_active"  # a drill holds the override: what to put back if the daemon restarts meanwhile
LAST_KEY = "drill_last"
POLL_S = 0.05
RECORDS_POLL_S = 0.25
STOP_TIMEOUT_S = 15.0
TONES = {"caller": 1000, "callee": 2000}  # each side of the test call plays its own and listens for the other's
UA_SLACK_S = 20.0  # the drill UA's start, registration and shutdown, besides its calls
CALL_SLACK_S = 10.0  # per call: setup, the tones settling, the hang-up
FIX_INTERNAL = "see the daemon's log (journalctl -u lifeline) around the drill's time, then run the drill again"


class DrillBusyError(DrillError):
    """A drill is already running."""


class DrillRefusedError(DrillError):
    """The box is not in NORMAL: a real outage (or a manual override) is under way."""


class DrillHost(Protocol):
    """What the drill needs of the daemon (gateway.app.App)."""

    @property
    def config(self) -> Config:
        """The configuration."""
        ...

    @property
    def store(self) -> Store:
        """The store: extensions (HA1), call records, events."""
        ...

    @property
    def mode(self) -> ModeController:
        """The mode controller the drill overrides."""
        ...

    @property
    def kamailio(self) -> KamailioSupervisor | None:
        """Kamailio, once started."""
        ...

    @property
    def cdr(self) -> CdrService:
        """Call records and their sinks."""
        ...

    @property
    def alerts(self) -> AlertQueue:
        """Where a failed drill is announced."""
        ...

    @property
    def port(self) -> int:
        """Kamailio's SIP port."""
        ...


def _sip_host(listen: str) -> tuple[str, str]:
    """(address the drill UA binds, host part for SIP URIs) for Kamailio's listen address."""
    address = ipaddress.ip_address(listen)
    if address.is_unspecified:
        address = ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
    return str(address), f"[{address}]" if address.version == 6 else str(address)


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


def _hz(value: Any) -> str:
    return f"{value} Hz" if value else "nothing"


def _heard(side: str, verdict: dict[str, Any]) -> str:
    return f"{side} heard {_hz(verdict.get('heard_hz'))} (expected {_hz(verdict.get('expected_hz'))})"


def _call_check(call: CallTest) -> Check:
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


class DrillService:
    """Runs one drill at a time; keeps the last result; the API and the status document read it."""

    def __init__(self, host: DrillHost) -> None:
        self._host = host
        self.directory = host.config.data_dir / "drills"
        self.state = DrillState.IDLE
        self.current: DrillResult | None = None
        self._last: dict[str, Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._restore: Override | None = None  # the override to put back, while the drill holds SURVIVAL

    # ------------------------------------------------------------------ state

    def _set_state(self, new: DrillState, reason: str) -> None:
        old, self.state = self.state, new
        if self.current is not None:
            self.current.state = new
            self.current.timeline.append(Moment(time.time(), new.value, reason))
        log.info("drill state", old=old.value, new=new.value, reason=reason)

    def _note(self, result: DrillResult, message: str) -> None:
        result.timeline.append(Moment(time.time(), self.state.value, message))
        log.info("drill", drill=result.id, step=self.state.value, what=message)

    def status(self) -> dict[str, Any]:
        """GET /api/v1/drill: the state, the running (or last) drill in full, the last one's summary."""
        return {
            "state": self.state.value,
            "running": self.state.running,
            "drill": self.current.as_dict() if self.current is not None else None,
            "last": self._last,
        }

    def summary(self) -> dict[str, Any]:
        """The status document's "drill" key."""
        return {"state": self.state.value, "running": self.state.running, "last": self._last}

    async def report(self, report_id: str, fmt: str) -> str | None:
        """A stored report's text (fmt json or html); None if there is no such report."""
        if not REPORT_ID.match(report_id) or fmt not in ("json", "html"):
            return None
        path = self.directory / f"{report_id}.{fmt}"
        try:
            return await asyncio.to_thread(path.read_text, encoding="utf-8")
        except FileNotFoundError:
            return None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """At daemon start: load the last drill; undo the override of a drill a restart cut short."""
        store, mode = self._host.store, self._host.mode
        self._last = await asyncio.to_thread(store.get_state, LAST_KEY)
        active = await asyncio.to_thread(store.get_state, ACTIVE_KEY)
        if not active:
            return
        status = mode.status()
        back = Override(active["override"])
        message = f"drill {active['id']} was cut short by a daemon restart"
        if status.override is Override.SURVIVAL:
            await mode.set_override(back, f"{message}: override back to {back.value}")
            message += f"; the override went back to {back.value}"
        await asyncio.to_thread(store.add_event, "drill", message, active)
        await asyncio.to_thread(store.set_state, ACTIVE_KEY, None)
        log.warning("drill interrupted by a restart", drill=active["id"], override=status.override.value)

    async def stop(self) -> None:
        """Cancel a running drill; it puts the mode back and writes its (failed) report first."""
        task = self._task
        if task is None or task.done():
            return
        task.cancel()
        await asyncio.wait({task}, timeout=STOP_TIMEOUT_S)

    def begin(self, *, emergency_test: bool = False, force: bool = False) -> DrillResult:
        """Start a drill in the background; DrillBusyError if one runs, DrillRefusedError in a real outage."""
        if self.state.running and self.current is not None:
            raise DrillBusyError(f"drill {self.current.id} is running ({self.state.value}): one at a time")
        config = self._host.config.drill
        if config.caller is None or config.callee is None:
            raise DrillError("no test extensions: set [drill] caller and callee (two dedicated test extensions)")
        if emergency_test and config.emergency_test_number is None:
            raise DrillError("emergency test: set [drill] emergency_test_number (the network's emergency TEST number)")
        if self._host.kamailio is None:
            raise DrillError("Kamailio is not running yet")
        status = self._host.mode.status()
        if status.mode is not Mode.NORMAL and not force:
            raise DrillRefusedError(
                f"the box is in {status.mode.value.upper()} ({status.reason}), not NORMAL: a real outage or a "
                "manual override is under way and a drill would end it; wait for NORMAL, or force the drill"
            )
        now = time.time()
        result = DrillResult(
            id=new_id(now, self.current.id if self.current is not None else None),
            started=now,
            forced=force,
            emergency_test=emergency_test,
        )
        self.current = result
        self._set_state(DrillState.SNAPSHOT, "drill started" + (" (forced)" if force else ""))
        self._task = asyncio.create_task(self._run(result), name=f"drill-{result.id}")
        return result

    # ------------------------------------------------------------------ the drill

    async def _run(self, result: DrillResult) -> None:
        try:
            try:
                await self._snapshot(result)
                if await self._fail_over(result):
                    await self._check(result)
            finally:
                await self._fail_back(result)
            await self._check_records(result)
        except DrillError as err:
            result.checks.append(Check("drill", Outcome.FAIL, str(err), FIX_INTERNAL))
        except asyncio.CancelledError:
            result.checks.append(Check("drill", Outcome.FAIL, "interrupted: the daemon is stopping", "run it again"))
            raise
        except Exception as err:  # the drill must end, and say so, whatever broke
            log.exception("drill failed unexpectedly", drill=result.id)
            result.checks.append(Check("drill", Outcome.FAIL, f"unexpected error: {err!r}", FIX_INTERNAL))
        finally:
            await self._finish(result)

    async def _snapshot(self, result: DrillResult) -> None:
        status = self._host.mode.status()
        result.mode_before = status.as_dict()
        result.registrations["before"] = sorted(a for a in await self._registered() if a not in self._test_numbers())
        result.backlog["before"] = await asyncio.to_thread(self._backlog)
        self._note(
            result,
            f"mode {status.mode.value} (override {status.override.value}); "
            f"{len(result.registrations['before'])} extension(s) registered; "
            f"{result.backlog['before']} call record(s) waiting for delivery",
        )

    async def _fail_over(self, result: DrillResult) -> bool:
        self._set_state(DrillState.FAILING_OVER, "override SURVIVAL")
        mode, store = self._host.mode, self._host.store
        timeout = self._host.config.drill.failover_timeout_s
        reason = f"drill {result.id}"
        previous = mode.status().override
        held = {"id": result.id, "override": previous.value, "reason": reason}
        await asyncio.to_thread(store.set_state, ACTIVE_KEY, held)
        self._restore = previous
        began = time.monotonic()
        await mode.set_override(Override.SURVIVAL, reason)
        served = await self._wait_serving(Mode.SURVIVAL, timeout)
        took = round(time.monotonic() - began, 3)
        if served:
            result.failover_s = took
            self._note(result, f"SURVIVAL: Kamailio serves the phones locally, {took:.3f} s after the override")
            result.checks.append(Check("failover", Outcome.PASS, f"serving locally {took:.3f} s after the override"))
            return True
        detail = f"not serving locally {timeout:g} s after the override (mode {mode.mode.value})"
        fix = "Kamailio did not take the mode: check `lifeline status` (kamailio state, restarts) and the daemon's log"
        result.checks.append(Check("failover", Outcome.FAIL, detail, fix))
        for skipped in ("registrations carried over", "test calls"):
            result.checks.append(Check(skipped, Outcome.SKIP, "not checked: the failover did not complete"))
        return False

    async def _check(self, result: DrillResult) -> None:
        self._set_state(DrillState.CHECKING, "registrations carried over, then the test calls")
        before = result.registrations["before"]
        now = await self._registered()
        carried = [a for a in before if a in now]
        missing = [a for a in before if a not in now]
        result.registrations.update(carried=carried, missing=missing)
        self._note(result, f"{len(carried)} of {len(before)} registration(s) carried over")
        name = "registrations carried over"
        if not before:
            result.checks.append(Check(name, Outcome.SKIP, "no phone was registered before the drill"))
        elif missing:
            detail = f"{len(missing)} of {len(before)} not served locally: {', '.join(missing)}"
            fix = "those phones must use Lifeline as outbound proxy (or as backup registrar): check their SIP settings"
            result.checks.append(Check(name, Outcome.FAIL, detail, fix))
        else:
            result.checks.append(Check(name, Outcome.PASS, f"all {len(before)} served locally: {', '.join(carried)}"))
        await self._test_calls(result)

    async def _test_calls(self, result: DrillResult) -> None:
        config = self._host.config
        drill = config.drill
        assert drill.caller is not None and drill.callee is not None
        rows = await asyncio.to_thread(self._extensions, [drill.caller, drill.callee])
        missing = [n for n in (drill.caller, drill.callee) if n not in rows]
        if missing:
            detail = f"test extension(s) {', '.join(missing)} not in the store"
            fix = "import them (`lifeline extensions import`) or add them to the directory the mirror reads"
            result.checks.append(Check("test extensions", Outcome.FAIL, detail, fix))
        if drill.caller not in rows:
            result.checks.append(Check("test calls", Outcome.SKIP, "not placed: the caller extension is missing"))
            return
        calls: list[dict[str, Any]] = []
        if drill.callee in rows:
            calls.append({"kind": "extension", "to": drill.callee, "audio": True})
        if drill.trunk_number:
            calls.append({"kind": "trunk", "to": drill.trunk_number})
        if result.emergency_test and drill.emergency_test_number:
            calls.append({"kind": "emergency_test", "to": drill.emergency_test_number})
        if not calls:
            return
        host, uri_host = _sip_host(config.sip.listen)
        target = f"sip:{uri_host}:{self._host.port}"
        spec = {
            "host": host,
            "domain": uri_host,
            "registrar": target,
            "proxy": f"{target};lr",
            "algorithm": config.sip.auth_algorithm,
            "caller": self._credentials(rows[drill.caller]),
            "callee": self._credentials(rows[drill.callee]) if drill.callee in rows else None,
            "calls": calls,
            "tones": TONES,
            "listen_s": drill.listen_s,
            "call_timeout_s": drill.call_timeout_s,
        }
        self._note(result, f"test calls: {', '.join(c['kind'] + ' to ' + c['to'] for c in calls)}")
        limit = UA_SLACK_S + len(calls) * (drill.call_timeout_s + drill.listen_s + CALL_SLACK_S)
        events = await run_user_agent(spec, limit, lambda event: self._on_ua_event(result, event))
        for event in events:
            if event.get("event") != "call":
                continue
            call = CallTest(
                kind=str(event["kind"]),
                caller=drill.caller,
                to=str(event["to"]),
                code=event.get("code"),
                reason=str(event.get("reason") or ""),
                answered=bool(event.get("answered")),
                call_id=str(event.get("call_id") or ""),
                audio=event["audio"] if isinstance(event.get("audio"), dict) else None,
                error=event.get("error"),
            )
            result.calls.append(call)
            result.checks.append(_call_check(call))

    def _on_ua_event(self, result: DrillResult, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "registered":
            self._note(result, f"test callee {event.get('extension')} registered locally: {event.get('code')}")
        elif kind == "call":
            answer = f"{event.get('code') or ''} {event.get('reason') or ''}".strip() or str(event.get("error"))
            audio = event.get("audio")
            heard = ""
            if isinstance(audio, dict):
                sides = ", ".join(
                    f"{side} heard {_hz(audio.get(side, {}).get('heard_hz'))}" for side in ("callee", "caller")
                )
                heard = f"; {sides}"
            self._note(result, f"{event.get('kind')} call to {event.get('to')}: {answer}{heard}")

    async def _fail_back(self, result: DrillResult) -> None:
        restore, self._restore = self._restore, None
        if restore is None:
            return  # never failed over
        self._set_state(DrillState.FAILING_BACK, f"override back to {restore.value}")
        mode, store = self._host.mode, self._host.store
        timeout = self._host.config.drill.failover_timeout_s
        began = time.monotonic()
        if mode.status().override is Override.SURVIVAL:
            await mode.set_override(restore, f"drill {result.id} over")
        else:
            self._note(result, f"the override was changed by hand meanwhile ({mode.status().override.value}): left so")
        await asyncio.to_thread(store.set_state, ACTIVE_KEY, None)
        if restore is Override.SURVIVAL:
            # A forced drill on a box held in SURVIVAL by hand: it stays so, there is no failback to time.
            result.mode_after = mode.status().as_dict()
            detail = "not timed: the override was survival before the drill (forced) and stays so"
            result.checks.append(Check("failback", Outcome.SKIP, detail))
            return
        served = await self._wait_serving(Mode.NORMAL, timeout)
        took = round(time.monotonic() - began, 3)
        result.mode_after = mode.status().as_dict()
        if served:
            result.failback_s = took
            self._note(result, f"NORMAL: relaying to the cloud again, {took:.3f} s after the override went back")
            result.checks.append(Check("failback", Outcome.PASS, f"NORMAL again {took:.3f} s after the override"))
            return
        status = mode.status()
        detail = f"still {status.mode.value} {timeout:g} s after the override went back ({status.reason})"
        fix = "the cloud is not reachable now: a real outage (see `lifeline status`); Lifeline keeps serving the phones"
        result.checks.append(Check("failback", Outcome.FAIL, detail, fix))

    async def _check_records(self, result: DrillResult) -> None:
        self._set_state(DrillState.CHECKING_RECORDS, "the test calls' records, delivered after failback")
        answered = [c.call_id for c in result.calls if c.answered and c.call_id]
        sinks = [d.sink.name for d in self._host.cdr.deliveries]
        if answered:
            deadline = time.monotonic() + self._host.config.drill.records_timeout_s
            while True:
                found = await asyncio.to_thread(self._records, answered)
                settled = all(r["state"] == "final" and set(r["delivery"].values()) <= {"delivered"} for r in found)
                if (settled and len(found) == len(answered)) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(RECORDS_POLL_S)
            seen = {r["call_id"] for r in found}
            result.records = found + [{"call_id": c, "state": None, "delivery": {}} for c in answered if c not in seen]
        result.backlog["after"] = await asyncio.to_thread(self._backlog)
        self._note(result, f"{result.backlog['after']} call record(s) waiting for delivery")
        if not answered:
            result.checks.append(Check("call records", Outcome.SKIP, "no answered test call to look for"))
            return
        lost = [r["call_id"] for r in result.records if r["state"] != "final"]
        if lost:
            detail = f"{len(lost)} of {len(answered)} test call record(s) not captured: {', '.join(lost)}"
            fix = "records are not being captured: look for 'capture pass failed' in the daemon's log"
            result.checks.append(Check("call records captured", Outcome.FAIL, detail, fix))
        else:
            result.checks.append(Check("call records captured", Outcome.PASS, f"{len(answered)} test call record(s)"))
        if not sinks:
            detail = "no CDR sink configured: the records stay on the box (`lifeline cdr export` hands them over)"
            result.checks.append(Check("call records delivered", Outcome.SKIP, detail))
            return
        undelivered = [r for r in result.records if set(r["delivery"].values()) != {"delivered"}]
        if undelivered:
            states = "; ".join(f"{r['call_id']}: {r['delivery'] or 'not queued'}" for r in undelivered)
            fix = (
                "the CDR sink did not take them: see `lifeline status` (cdr sinks, last_error) and its URL/credentials"
            )
            result.checks.append(Check("call records delivered", Outcome.FAIL, states, fix))
        else:
            detail = f"delivered to {', '.join(sinks)} after failback"
            result.checks.append(Check("call records delivered", Outcome.PASS, detail))

    async def _finish(self, result: DrillResult) -> None:
        host = self._host
        result.finished = time.time()
        if not result.mode_after:
            result.mode_after = host.mode.status().as_dict()
        failures = result.failures
        if failures:
            self._set_state(
                DrillState.FAILED, f"{len(failures)} check(s) failed: {', '.join(c.name for c in failures)}"
            )
        else:
            self._set_state(DrillState.DONE, "every check passed")
        try:
            await asyncio.to_thread(write_reports, self.directory, result)
        except OSError as err:
            log.error("drill report not written", drill=result.id, error=str(err))
        summary = result.summary()
        self._last = summary
        verdict = "passed" if result.passed else "FAILED: " + ", ".join(c.name for c in failures)
        message = f"drill {result.id} {verdict}"
        await asyncio.to_thread(host.store.set_state, LAST_KEY, summary)
        await asyncio.to_thread(host.store.add_event, "drill", message, summary)
        if not result.passed:
            fixes = [{"check": c.name, "detail": c.detail, "fix": c.fix} for c in failures]
            await host.alerts.raise_alert(
                Alert.new("drill.failed", {**summary, "checks": fixes, "summary": f"Lifeline {message}"})
            )
        log.info("drill over", drill=result.id, passed=result.passed, reports=result.reports)

    # ------------------------------------------------------------------ what it looks at

    def _test_numbers(self) -> set[str]:
        drill = self._host.config.drill
        return {n for n in (drill.caller, drill.callee) if n is not None}

    async def _wait_serving(self, want: Mode, timeout_s: float) -> bool:
        """Whether the mode became want and Kamailio follows it (serving locally or relaying) within timeout_s."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self._host.mode.mode is want and await self._kamailio_local() == want.serves_locally:
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(POLL_S)

    async def _kamailio_local(self) -> bool | None:
        """Whether Kamailio serves phones locally now ($shv(survival)); None if it does not answer."""
        kamailio = self._host.kamailio
        if kamailio is None:
            return None
        try:
            value = await kamailio.rpc.call("pv.shvGet", "survival")
        except RpcError:
            return None
        item = value[0] if isinstance(value, list) and value else value
        return isinstance(item, dict) and int(item.get("value", 0)) == 1

    async def _registered(self) -> set[str]:
        """The AORs with a live binding in Kamailio's location table."""
        kamailio = self._host.kamailio
        if kamailio is None:
            raise DrillError("Kamailio is not running")
        try:
            dump = await kamailio.rpc.call("ul.dump")
        except RpcError as err:
            raise DrillError(f"cannot read Kamailio's registrations: {err}") from err
        aors: set[str] = set()
        for domain in (dump or {}).get("Domains", []):
            for entry in domain.get("Domain", {}).get("AoRs", []):
                info = entry.get("Info", {})
                contacts = [c.get("Contact", {}) for c in info.get("Contacts", [])]
                if any(str(c.get("Expires")) != "expired" for c in contacts):
                    aors.add(str(info.get("AoR")))
        return aors

    def _extensions(self, numbers: list[str]) -> dict[str, dict[str, Any]]:
        """The test extensions with their digests (worker thread)."""
        marks = ",".join("?" * len(numbers))
        with self._host.store.read() as conn:
            cursor = conn.execute(
                f"SELECT number, auth_user, realm, ha1, ha1_sha256 FROM extensions WHERE number IN ({marks})", numbers
            )
            names = [d[0] for d in cursor.description]
            return {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}

    def _credentials(self, row: dict[str, Any]) -> dict[str, str]:
        sha = self._host.config.sip.auth_algorithm == "SHA-256"
        return {
            "number": str(row["number"]),
            "user": str(row["auth_user"]),
            "realm": str(row["realm"]),
            "ha1": str(row["ha1_sha256"] if sha else row["ha1"]),
        }

    def _records(self, call_ids: list[str]) -> list[dict[str, Any]]:
        """The records of these calls, each with its delivery state per sink (worker thread)."""
        marks = ",".join("?" * len(call_ids))
        found: list[dict[str, Any]] = []
        with self._host.store.read() as conn:
            rows = conn.execute(
                f"SELECT seq, call_id, state, disposition, mode FROM cdrs WHERE call_id IN ({marks})"
                " AND state != 'merged' ORDER BY seq",
                call_ids,
            ).fetchall()
            for seq, call_id, state, disposition, mode in rows:
                outbox = conn.execute("SELECT sink, state FROM cdr_outbox WHERE cdr_seq = ?", [seq]).fetchall()
                delivery = {str(sink): str(st) for sink, st in outbox}
                found.append(
                    {"call_id": call_id, "seq": seq, "state": state, "disposition": disposition, "mode": mode}
                    | {"delivery": delivery}
                )
        return found

    def _backlog(self) -> int:
        """Call records not yet delivered to every sink (worker thread)."""
        with self._host.store.read() as conn:
            row = conn.execute("SELECT COUNT(DISTINCT cdr_seq) FROM cdr_outbox WHERE state != 'delivered'").fetchone()
        return int(row[0] or 0)
