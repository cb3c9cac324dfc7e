from __future__ import annotations

import random

from gateway.config import HealthConfig
from gateway.core.failover import FailoverPolicy
from gateway.core.mode import Mode


def run(policy: FailoverPolicy, outcomes: list[bool], mode: Mode, start: float = 0.0, step: float = 1.0) -> Mode:
    now = start
    for ok in outcomes:
        decision = policy.observe(ok, mode, now)
        if decision is not None:
            mode = decision.mode
        now += step
    return mode


def test_hard_cut_fails_over_after_the_configured_misses() -> None:
    policy = FailoverPolicy(HealthConfig())
    assert run(policy, [True] * 5, Mode.NORMAL) is Mode.NORMAL
    assert run(policy, [False], Mode.NORMAL) is Mode.SUSPECT
    assert run(policy, [False, False], Mode.SUSPECT) is Mode.SUSPECT
    decision = policy.observe(False, Mode.SUSPECT, 10)
    assert decision is not None and decision.mode is Mode.SURVIVAL
    assert "4 probes in a row" in decision.reason


def test_a_single_miss_is_forgiven() -> None:
    policy = FailoverPolicy(HealthConfig())
    assert run(policy, [False, True, True, True], Mode.NORMAL) is Mode.NORMAL


def test_ten_percent_packet_loss_never_fails_over_in_an_hour() -> None:
    rng = random.Random(7)

    def probe_answered() -> bool:
        # Request and answer each cross a link losing 10 %; the probe retransmits once.
        return any(rng.random() >= 0.10 and rng.random() >= 0.10 for _ in range(2))

    policy = FailoverPolicy(HealthConfig())
    mode = Mode.NORMAL
    for second in range(3600):
        decision = policy.observe(probe_answered(), mode, float(second))
        if decision is not None:
            mode = decision.mode
        assert mode in (Mode.NORMAL, Mode.SUSPECT), f"failed over at {second} s"


def test_failback_waits_for_the_hold_down() -> None:
    policy = FailoverPolicy(HealthConfig(hold_down_s=60))
    mode = run(policy, [True], Mode.SURVIVAL, start=100)
    assert mode is Mode.RECOVERING
    assert run(policy, [True] * 59, Mode.RECOVERING, start=101) is Mode.RECOVERING
    decision = policy.observe(True, Mode.RECOVERING, 160)
    assert decision is not None and decision.mode is Mode.NORMAL


def test_flapping_grows_the_hold_down_up_to_the_cap() -> None:
    policy = FailoverPolicy(HealthConfig(hold_down_s=60, hold_down_max_s=200))
    mode = Mode.SURVIVAL
    holds = []
    now = 0.0
    for _ in range(4):
        mode = run(policy, [True, True, False, False], mode, start=now)
        now += 10
        holds.append(policy.hold_down)
    assert mode is Mode.SURVIVAL
    assert holds == [120, 200, 200, 200]


def test_failing_again_soon_after_failback_counts_as_a_flap() -> None:
    policy = FailoverPolicy(HealthConfig(hold_down_s=10))
    mode = run(policy, [True] * 12, Mode.SURVIVAL)
    assert mode is Mode.NORMAL
    mode = run(policy, [False] * 4, mode, start=20)
    assert mode is Mode.SURVIVAL and policy.hold_down == 20


def test_heavy_loss_fails_over_without_three_misses_in_a_row() -> None:
    policy = FailoverPolicy(HealthConfig(window=10, window_loss=0.5, fail_after_misses=3, recover_after_ok=5))
    mode, reasons = Mode.NORMAL, []
    for ok in [False, False, True] * 4:
        decision = policy.observe(ok, mode, 0)
        if decision:
            mode = decision.mode
            reasons.append(decision.reason)
        if mode is Mode.SURVIVAL:
            break
    assert mode is Mode.SURVIVAL
    assert "% of the last" in reasons[-1]


def test_resume_in_recovering_restarts_the_hold_down() -> None:
    policy = FailoverPolicy(HealthConfig(hold_down_s=30))
    policy.resume(Mode.RECOVERING, 1000)
    assert policy.observe(True, Mode.RECOVERING, 1029) is None
    decision = policy.observe(True, Mode.RECOVERING, 1030)
    assert decision is not None and decision.mode is Mode.NORMAL
