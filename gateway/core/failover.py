"""When to fail over and back: counters over the cloud SIP probe's outcomes. Pure and clock-injected.

The mode controller owns the state; this decides, from the current mode and one more probe outcome,
whether the mode should change and why.
"""

from __future__ import annotations

from collections import deque

from gateway.config import HealthConfig
from gateway.core.mode import Decision, Mode


class FailoverPolicy:
    """Fail over fast on consecutive misses or heavy loss; fail back only after a hold-down that flapping grows."""

    def __init__(self, config: HealthConfig) -> None:
        self.config = config
        self.window: deque[bool] = deque(maxlen=config.window)
        self.misses = 0  # consecutive
        self.answers = 0  # consecutive
        self.hold_down = config.hold_down_s
        self.flaps = 0
        self.recovering_since: float | None = None
        self.normal_since: float | None = None
        self.failed_back_at: float | None = None

    @property
    def loss(self) -> float:
        """Share of missed probes in the window."""
        return self.window.count(False) / len(self.window) if self.window else 0.0

    def resume(self, mode: Mode, now: float) -> None:
        """Start from a persisted mode (a restart in an outage resumes without new misses)."""
        if mode is Mode.RECOVERING:
            self.recovering_since = now
        if mode is Mode.NORMAL:
            self.normal_since = now

    def observe(self, ok: bool, mode: Mode, now: float) -> Decision | None:
        """Account one probe outcome in the given mode; return the change it calls for, if any."""
        self.window.append(ok)
        self.misses = 0 if ok else self.misses + 1
        self.answers = self.answers + 1 if ok else 0
        cfg = self.config
        if mode is Mode.NORMAL:
            if self.normal_since is not None and now - self.normal_since >= cfg.flap_forget_s:
                self.hold_down, self.flaps, self.failed_back_at = cfg.hold_down_s, 0, None
            if not ok:
                return Decision(Mode.SUSPECT, "the cloud missed a probe")
            return None
        if mode is Mode.SUSPECT:
            if self.misses >= cfg.fail_after_misses:
                return self._to_survival(f"{self.misses} probes in a row unanswered", now)
            if len(self.window) == cfg.window and self.loss >= cfg.window_loss:
                return self._to_survival(f"{self.loss:.0%} of the last {len(self.window)} probes lost", now)
            if self.answers >= cfg.recover_after_ok:
                return self._to_normal(f"{self.answers} answers in a row; suspicion cleared", now)
            return None
        if mode is Mode.SURVIVAL:
            if ok:
                self.recovering_since = now
                return Decision(Mode.RECOVERING, f"the cloud answers again; failback after {self.hold_down:.0f} s")
            return None
        # RECOVERING: still serving locally; a relapse restarts the hold-down and lengthens it.
        if self.misses >= 2:
            self.recovering_since = None
            return Decision(Mode.SURVIVAL, f"the cloud failed again while recovering; {self._flap()}")
        if ok and self.recovering_since is not None and now - self.recovering_since >= self.hold_down:
            self.failed_back_at = now
            return self._to_normal(f"the cloud answered steadily for {now - self.recovering_since:.0f} s", now)
        return None

    def _flap(self) -> str:
        cfg = self.config
        self.flaps += 1
        self.hold_down = min(max(self.hold_down * 2, 1.0), max(cfg.hold_down_max_s, cfg.hold_down_s))
        return f"flap {self.flaps}, hold-down now {self.hold_down:.0f} s"

    def _to_survival(self, reason: str, now: float) -> Decision:
        self.normal_since = None
        if self.failed_back_at is not None and now - self.failed_back_at < self.config.flap_forget_s:
            # Failed back, then failed again soon: that is flapping too.
            reason = f"{reason}; {self._flap()}"
        return Decision(Mode.SURVIVAL, reason)

    def _to_normal(self, reason: str, now: float) -> Decision:
        self.recovering_since = None
        self.normal_since = now
        return Decision(Mode.NORMAL, reason)
