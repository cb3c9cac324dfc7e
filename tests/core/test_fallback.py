"""The per-request fallback's wait: a few of the cloud's round trips, within floor and ceiling."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.config import FallbackConfig
from gateway.core.fallback import RttEstimator, fallback_timers


def estimator(*samples: float) -> RttEstimator:
    rtt = RttEstimator()
    for sample in samples:
        rtt.add(sample)
    return rtt


def test_the_estimate_follows_rfc_6298() -> None:
    rtt = estimator(100.0)
    assert (rtt.srtt_ms, rtt.rttvar_ms) == (100.0, 50.0)
    rtt.add(180.0)
    assert rtt.rttvar_ms == pytest.approx(0.75 * 50 + 0.25 * 80)
    assert rtt.srtt_ms == pytest.approx(0.875 * 100 + 0.125 * 180)


def test_a_cloud_100_ms_away_gets_several_round_trips_and_a_near_one_the_floor() -> None:
    config = FallbackConfig()
    far = fallback_timers(estimator(*[100.0, 110.0, 90.0] * 10), config, suspect=False)
    assert 400 < far.wait_ms <= 700  # 4 × 100 ms plus four deviations
    assert far.t1_ms == far.wait_ms // 3  # a lost INVITE is sent again well inside the wait
    near = fallback_timers(estimator(*[0.3] * 10), config, suspect=False)
    assert near.wait_ms == config.floor_ms


def test_the_wait_is_the_ceiling_before_any_round_trip_and_when_not_adaptive() -> None:
    config = FallbackConfig(invite_timeout_ms=2500)
    assert fallback_timers(RttEstimator(), config, suspect=False).wait_ms == 2500
    fixed = FallbackConfig(adaptive=False)
    assert fallback_timers(estimator(5.0), fixed, suspect=False).wait_ms == fixed.invite_timeout_ms
    assert fallback_timers(estimator(5.0), fixed, suspect=True).wait_ms == fixed.invite_timeout_ms
    slow = fallback_timers(estimator(*[900.0] * 10), FallbackConfig(), suspect=False)
    assert slow.wait_ms == FallbackConfig().invite_timeout_ms  # never longer than the configured most


def test_a_missed_probe_drops_the_wait_to_the_floor() -> None:
    config = FallbackConfig(floor_ms=250)
    assert fallback_timers(estimator(*[100.0] * 10), config, suspect=True).wait_ms == 250


def test_a_floor_above_the_ceiling_is_refused_by_name() -> None:
    with pytest.raises(ValidationError, match="floor_ms"):
        FallbackConfig(floor_ms=3000, invite_timeout_ms=2000)
