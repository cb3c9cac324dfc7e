"""The one retry schedule: exponential backoff with full jitter, for every outbox that retries."""

from __future__ import annotations

import random


def full_jitter(failures: int, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after `failures` consecutive failures: uniform in [0, min(max, base·2^(n-1))].

    Full jitter (uniform from zero) spreads the retries of many boxes that lost the same server at
    the same moment, so they do not come back to it in step.
    """
    if failures <= 0:
        return 0.0
    ceiling = min(max_s, base_s * 2 ** min(failures - 1, 30))
    return (rng or random).uniform(0, ceiling)
