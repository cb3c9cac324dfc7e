"""`lifeline drill`: a safe disaster-recovery test while the office works, and the report an auditor keeps.

One drill at a time, an explicit state machine: SNAPSHOT (mode, registrations, record backlog) →
FAILING_OVER (override SURVIVAL, timed until Kamailio serves locally) → CHECKING (the registrations
are still served; test calls with audio both ways, in a child process) → FAILING_BACK (the override
as it was, timed until NORMAL) → CHECKING_RECORDS (the test calls' records delivered) → DONE or
FAILED. Whatever breaks, the override goes back; a restart in the middle puts it back at start.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog

from gateway.core.alerts import Alert
from gateway.core.mode import Mode, Override
from gateway.drill import probes
from gateway.drill.calls import call_from_event, event_note, planned_calls, time_limit, ua_spec
from gateway.drill.checks import call_check, records_checks, registrations_check
from gateway.drill.host import DrillHost
from gateway.drill.model import Check, DrillResult, DrillState, Moment, Outcome
from gateway.drill.report import REPORT_ID, new_id, write_reports
from gateway.drill.runner import DrillError, run_user_agent

log = structlog.get_logger("drill")

ACTIVE_KEY = "drill_active"  # a drill holds the override: what to put back if the daemon restarts meanwhile
LAST_KEY = "drill_last"
RECORDS_POLL_S = 0.25
STOP_TIMEOUT_S = 15.0
FIX_INTERNAL = "see the daemon's log (journalctl -u lifeline) around the drill's time, then run the drill again"


class DrillBusyError(DrillError):
    """A drill is already running."""


class DrillRefusedError(DrillError):
    """The box is not in NORMAL: a real outage (or a manual override) is under way."""


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
        registered = await probes.registered(self._host.kamailio)
        result.registrations["before"] = sorted(a for a in registered if a not in self._test_numbers())
        result.backlog["before"] = await asyncio.to_thread(probes.backlog, self._host.store)
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
        served = await probes.wait_serving(self._host, Mode.SURVIVAL, timeout)
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
        now = await probes.registered(self._host.kamailio)
        carried = [a for a in before if a in now]
        missing = [a for a in before if a not in now]
        result.registrations.update(carried=carried, missing=missing)
        self._note(result, f"{len(carried)} of {len(before)} registration(s) carried over")
        result.checks.append(registrations_check(before, carried, missing))
        await self._test_calls(result)

    async def _test_calls(self, result: DrillResult) -> None:
        config = self._host.config
        drill = config.drill
        assert drill.caller is not None and drill.callee is not None
        rows = await asyncio.to_thread(probes.extensions, self._host.store, [drill.caller, drill.callee])
        missing = [n for n in (drill.caller, drill.callee) if n not in rows]
        if missing:
            detail = f"test extension(s) {', '.join(missing)} not in the store"
            fix = "import them (`lifeline extensions import`) or add them to the directory the mirror reads"
            result.checks.append(Check("test extensions", Outcome.FAIL, detail, fix))
        if drill.caller not in rows:
            result.checks.append(Check("test calls", Outcome.SKIP, "not placed: the caller extension is missing"))
            return
        calls = planned_calls(drill, drill.callee in rows, result.emergency_test)
        if not calls:
            return
        spec = ua_spec(config, self._host.port, rows, calls)
        self._note(result, f"test calls: {', '.join(c['kind'] + ' to ' + c['to'] for c in calls)}")
        limit = time_limit(drill, len(calls))
        events = await run_user_agent(spec, limit, lambda event: self._on_ua_event(result, event))
        for event in events:
            call = call_from_event(event, drill.caller)
            if call is not None:
                result.calls.append(call)
                result.checks.append(call_check(call))

    def _on_ua_event(self, result: DrillResult, event: dict[str, Any]) -> None:
        note = event_note(event)
        if note is not None:
            self._note(result, note)

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
        served = await probes.wait_serving(self._host, Mode.NORMAL, timeout)
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
                found = await asyncio.to_thread(probes.records, self._host.store, answered)
                settled = all(r["state"] == "final" and set(r["delivery"].values()) <= {"delivered"} for r in found)
                if (settled and len(found) == len(answered)) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(RECORDS_POLL_S)
            seen = {r["call_id"] for r in found}
            result.records = found + [{"call_id": c, "state": None, "delivery": {}} for c in answered if c not in seen]
        result.backlog["after"] = await asyncio.to_thread(probes.backlog, self._host.store)
        self._note(result, f"{result.backlog['after']} call record(s) waiting for delivery")
        result.checks.extend(records_checks(answered, result.records, sinks))

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

    def _test_numbers(self) -> set[str]:
        drill = self._host.config.drill
        return {n for n in (drill.caller, drill.callee) if n is not None}
