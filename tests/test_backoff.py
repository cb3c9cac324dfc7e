"""The one retry schedule every outbox uses."""

from __future__ import annotations

import random

from gateway.backoff import full_jitter


def test_backoff_grows_exponentially_with_full_jitter() -> None:
    rng = random.Random(7)
    ceilings = [min(60.0, 1.0 * 2 ** (n - 1)) for n in range(1, 10)]
    for n, ceiling in enumerate(ceilings, start=1):
        delays = [full_jitter(n, 1.0, 60.0, rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # jitter spans the whole range
        assert min(delays) < ceiling * 0.2  # ...from zero up: retries of many boxes do not come in step
    assert full_jitter(0, 1.0, 60.0) == 0.0
    assert full_jitter(10_000, 1.0, 60.0, rng) <= 60.0  # no overflow however long the outage
