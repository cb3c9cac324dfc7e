"""The per-request fallback waits a few of the cloud's round trips: a far cloud keeps its calls, a silent one not.

The lab kernel has no netem, so the lab cloud (a real Kamailio) handles every request 100 ± 20 ms late.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.lab.cloud import LabCloud
from gateway.lab.daemon import LifelineProcess
from gateway.lab.phones import SipEndpoint, talk
from tests.conftest import CLOUD_HOST, registered_via_lifeline, running_lifeline, start_lab_cloud

pytestmark = pytest.mark.usefixtures("fresh_phones")

LOCAL = "locally"  # Kamailio's line for a call the cloud did not take in time: "…; serving **02 locally"


@pytest.fixture
def far_cloud(tmp_path: Path) -> Iterator[LabCloud]:
    lab = start_lab_cloud(tmp_path / "cloud", CLOUD_HOST, delay_ms=(100, 20))
    yield lab
    lab.stop()


@pytest.fixture
def lifeline(tmp_path: Path, far_cloud: LabCloud, extensions_csv: Path) -> Iterator[LifelineProcess]:
    # A probe that a busy box keeps past its 1 s timeout would count as missed and drop the wait to the
    # 300 ms floor while the far cloud still answers: 3 s, so that only the silent cloud misses one.
    health = {"health": {"sip_timeout_s": 3.0}}
    with running_lifeline(tmp_path / "lifeline", extensions_csv, {"sbc": far_cloud.uri}, health) as daemon:
        yield daemon


def wait_health(lifeline: LifelineProcess, ok: object, what: str, within: float = 20.0) -> dict[str, object]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        health: dict[str, object] = lifeline.status()["health"]
        if ok(health):  # type: ignore[operator]
            return health
        time.sleep(0.2)
    raise AssertionError(f"no {what} within {within:.0f} s: {lifeline.status()['health']}")


def served_locally(lifeline: LifelineProcess) -> int:
    return sum(1 for line in lifeline.log_path.read_text().splitlines() if LOCAL in line and "INVITE" in line)


def test_a_far_cloud_keeps_its_calls_and_a_silent_one_loses_them_to_the_floor(
    sip_endpoint: SipEndpoint, far_cloud: LabCloud, lifeline: LifelineProcess
) -> None:
    ep = sip_endpoint
    alice, bob = registered_via_lifeline(ep, lifeline, far_cloud, "1001", "1002")
    # The probes learn the cloud's round trip; the wait grows past it, well below the configured most.
    health = wait_health(
        lifeline, lambda h: h["cloud_srtt_ms"] is not None and h["cloud_srtt_ms"] > 60, "learnt round trip"
    )
    wait = wait_health(lifeline, lambda h: 400 <= h["fallback_wait_ms"] < 2000, "wait of a few round trips")
    print(f"cloud srtt {health['cloud_srtt_ms']} ms, fallback wait {wait['fallback_wait_ms']} ms")
    for _ in range(6):
        talk(ep, alice, bob, caller_hangs_up=True)
    assert served_locally(lifeline) == 0, "a call the far cloud answered in time was served locally"

    # The cloud goes silent: a missed probe drops the wait to the floor and the next call is served here.
    lifeline.set_mode("normal")  # held, so this is the per-request fallback, not the mode change
    far_cloud.pause()
    try:
        floor = wait_health(lifeline, lambda h: h["fallback_wait_ms"] == 300, "the floor after a missed probe")
        assert floor["fallback_wait_ms"] == 300
        talk(ep, alice, bob, caller_hangs_up=True)
        ep.wait_for(lambda: served_locally(lifeline) >= 1, 5, "the local fallback in the log")
        assert served_locally(lifeline) == 1
    finally:
        far_cloud.resume()
