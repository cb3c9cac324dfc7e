"""How long an INVITE waits for the cloud's first answer before it is served locally: a few round trips."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config import FallbackConfig

# RFC 6298's gains: the smoothed RTT follows an eighth of each new sample, its variation a quarter.
ALPHA, BETA = 1 / 8, 1 / 4
# tm's first retransmission interval for the cloud's INVITE: short enough that one lost datagram is
# sent again well inside the wait, never below what a busy link can bear.
T1_SHARE, T1_FLOOR_MS = 3, 50


@dataclass
class RttEstimator:
    """The smoothed round-trip time and its variation, from the SIP probe's answered OPTIONS (RFC 6298)."""

    srtt_ms: float | None = None
    rttvar_ms: float | None = None

    def add(self, rtt_ms: float) -> None:
        """Account one measured round trip."""
        if self.srtt_ms is None or self.rttvar_ms is None:
            self.srtt_ms, self.rttvar_ms = rtt_ms, rtt_ms / 2
            return
        self.rttvar_ms = (1 - BETA) * self.rttvar_ms + BETA * abs(self.srtt_ms - rtt_ms)
        self.srtt_ms = (1 - ALPHA) * self.srtt_ms + ALPHA * rtt_ms


@dataclass(frozen=True)
class FallbackTimers:
    """What Kamailio gives the cloud for one INVITE: the wait for any answer, and the first resend."""

    wait_ms: int
    t1_ms: int


def fallback_timers(rtt: RttEstimator, config: FallbackConfig, *, suspect: bool) -> FallbackTimers:
    """rtt_factor round trips plus four deviations, within floor and ceiling; the floor once a probe was missed."""
    ceiling = config.invite_timeout_ms
    if not config.adaptive:
        wait = ceiling
    elif suspect:
        wait = config.floor_ms  # the cloud already missed a probe: the next caller should not wait for it
    elif rtt.srtt_ms is None or rtt.rttvar_ms is None:
        wait = ceiling  # nothing measured yet: the configured wait
    else:
        wait = round(config.rtt_factor * rtt.srtt_ms + 4 * rtt.rttvar_ms)
        wait = min(ceiling, max(config.floor_ms, wait))
    return FallbackTimers(wait, max(T1_FLOOR_MS, min(500, wait // T1_SHARE)))
