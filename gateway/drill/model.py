"""What a drill is and what it found: its states, the checks with their fixes, the timeline, the result."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class DrillState(enum.StrEnum):
    """Where a drill is; DONE and FAILED are its ends (a new drill may start from them)."""

    IDLE = "idle"
    SNAPSHOT = "snapshot"
    FAILING_OVER = "failing_over"
    CHECKING = "checking"
    FAILING_BACK = "failing_back"
    CHECKING_RECORDS = "checking_records"
    DONE = "done"
    FAILED = "failed"

    @property
    def running(self) -> bool:
        """Whether a drill is under way in this state."""
        return self not in (DrillState.IDLE, DrillState.DONE, DrillState.FAILED)


class Outcome(enum.StrEnum):
    """How one check came out."""

    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"  # did not apply (no CDR sink, no trunk number), or could not run after an earlier failure


@dataclass(frozen=True)
class Check:
    """One check: its name, how it came out, what was found and, when it failed, the one-line fix."""

    name: str
    outcome: Outcome
    detail: str
    fix: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"name": self.name, "outcome": self.outcome.value, "detail": self.detail, "fix": self.fix}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Check:
        """The check a report holds."""
        return cls(str(data["name"]), Outcome(data["outcome"]), str(data["detail"]), data.get("fix"))


@dataclass(frozen=True)
class Moment:
    """One line of the timeline: when (UNIX time), in which state, what happened."""

    ts: float
    state: str
    message: str


@dataclass
class CallTest:
    """One test call the drill placed and what came of it."""

    kind: str  # "extension", "trunk" or "emergency_test"
    caller: str
    to: str
    code: int | None = None  # the final SIP answer (200 when answered)
    reason: str = ""
    answered: bool = False
    call_id: str = ""
    audio: dict[str, Any] | None = None  # extension calls: the tone each side sent and what the other heard
    error: str | None = None

    @property
    def audio_ok(self) -> bool | None:
        """Whether each side heard the other's tone (None: no audio check on this call)."""
        if self.audio is None:
            return None
        return bool(self.audio.get("callee", {}).get("ok")) and bool(self.audio.get("caller", {}).get("ok"))


@dataclass
class DrillResult:
    """A drill as it runs and as its report keeps it."""

    id: str
    started: float
    state: DrillState = DrillState.IDLE
    finished: float | None = None
    forced: bool = False
    emergency_test: bool = False
    mode_before: dict[str, Any] = field(default_factory=dict)
    mode_after: dict[str, Any] = field(default_factory=dict)
    failover_s: float | None = None
    failback_s: float | None = None
    registrations: dict[str, list[str]] = field(default_factory=lambda: {"before": [], "carried": [], "missing": []})
    calls: list[CallTest] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    backlog: dict[str, int] = field(default_factory=dict)  # call records not yet delivered: before, after
    checks: list[Check] = field(default_factory=list)
    timeline: list[Moment] = field(default_factory=list)
    reports: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Whether the drill ran to its end with no failed check."""
        return self.state is DrillState.DONE

    @property
    def failures(self) -> list[Check]:
        """The checks that failed."""
        return [c for c in self.checks if c.outcome is Outcome.FAIL]

    def summary(self) -> dict[str, Any]:
        """What the status document shows of the drill."""
        return {
            "id": self.id,
            "state": self.state.value,
            "passed": self.passed,
            "started": self.started,
            "finished": self.finished,
            "failover_s": self.failover_s,
            "failback_s": self.failback_s,
            "failed": [c.name for c in self.failures],
            "reports": dict(self.reports),
        }

    def as_dict(self) -> dict[str, Any]:
        """The whole result, JSON-ready (the JSON report)."""
        data = asdict(self)
        data["state"] = self.state.value
        data["passed"] = self.passed
        data["checks"] = [c.as_dict() for c in self.checks]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DrillResult:
        """The result a JSON report holds."""
        return cls(
            id=str(data["id"]),
            started=float(data["started"]),
            state=DrillState(data["state"]),
            finished=data.get("finished"),
            forced=bool(data.get("forced")),
            emergency_test=bool(data.get("emergency_test")),
            mode_before=dict(data.get("mode_before") or {}),
            mode_after=dict(data.get("mode_after") or {}),
            failover_s=data.get("failover_s"),
            failback_s=data.get("failback_s"),
            registrations={k: list(v) for k, v in (data.get("registrations") or {}).items()},
            calls=[CallTest(**c) for c in data.get("calls") or []],
            records=list(data.get("records") or []),
            backlog=dict(data.get("backlog") or {}),
            checks=[Check.from_dict(c) for c in data.get("checks") or []],
            timeline=[Moment(**m) for m in data.get("timeline") or []],
            reports=dict(data.get("reports") or {}),
        )
