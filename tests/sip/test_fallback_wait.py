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
from gateway.lab.phones import Phone, SipEndpoint
from gateway.sip.render import free_port
from tests.conftest import CLOUD_HOST, PASSWORDS, REALM, lab_extensions

pytestmark = pytest.mark.usefixtures("fresh_phones")

LOCAL = "locally"  # Kamailio's line for a call the cloud did not take in time: "…; serving **02 locally"


@pytest.fixture
def far_cloud(tmp_path: Path) -> Iterator[LabCloud]:
    lab = LabCloud(tmp_path / "cloud", host=CLOUD_HOST, port=free_port(CLOUD_HOST), realm=REALM, delay_ms=(100, 20))
    lab.add_subscribers(lab_extensions())
    lab.start()
    yield lab
    lab.stop()


@pytest.fixture
def lifeline(tmp_path: Path, far_cloud: LabCloud, extensions_csv: Path) -> Iterator[LifelineProcess]:
    daemon = LifelineProcess(
        tmp_path / "lifeline",
        {"cloud": {"sbc": far_cloud.uri, "realm": REALM}, "sip": {"listen": "127.0.0.1", "children": 2}},
    )
    daemon.cli("extensions", "import", str(extensions_csv))
    daemon.start()
    yield daemon
    daemon.stop()


def phone(ep: SipEndpoint, lifeline: LifelineProcess, cloud: LabCloud, user: str) -> Phone:
    proxy = f"sip:127.0.0.1:{lifeline.sip_port};lr"
    return ep.phone(user, PASSWORDS[user], domain=CLOUD_HOST, registrar=cloud.uri, proxy=proxy)


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


def talk(ep: SipEndpoint, caller: Phone, callee: Phone) -> None:
    """One answered call from caller to callee, hung up again."""
    before = len(callee.incoming)
    call = caller.call("1002")
    ep.wait_for(lambda: len(callee.incoming) > before, 15, "the callee to ring")
    incoming = callee.incoming[-1]
    incoming.answer_with(200)
    ep.wait_for(lambda: call.state == "CONFIRMED", what="the call to be answered")
    call.hang_up()
    ep.wait_for(lambda: incoming.state == "DISCONNECTED", what="the callee to see the hang-up")


def test_a_far_cloud_keeps_its_calls_and_a_silent_one_loses_them_to_the_floor(
    sip_endpoint: SipEndpoint, far_cloud: LabCloud, lifeline: LifelineProcess
) -> None:
    ep = sip_endpoint
    alice, bob = phone(ep, lifeline, far_cloud, "1001"), phone(ep, lifeline, far_cloud, "1002")
    assert alice.register() == 200 and bob.register() == 200
    # The probes learn the cloud's round trip; the wait grows past it, well below the configured most.
    health = wait_health(
        lifeline, lambda h: h["cloud_srtt_ms"] is not None and h["cloud_srtt_ms"] > 60, "learnt round trip"
    )
    wait = wait_health(lifeline, lambda h: 400 <= h["fallback_wait_ms"] < 2000, "wait of a few round trips")
    print(f"cloud srtt {health['cloud_srtt_ms']} ms, fallback wait {wait['fallback_wait_ms']} ms")
    for _ in range(6):
        talk(ep, alice, bob)
    assert served_locally(lifeline) == 0, "a call the far cloud answered in time was served locally"

    # The cloud goes silent: a missed probe drops the wait to the floor and the next call is served here.
    lifeline.set_mode("normal")  # held, so this is the per-request fallback, not the mode change
    far_cloud.pause()
    try:
        floor = wait_health(lifeline, lambda h: h["fallback_wait_ms"] == 300, "the floor after a missed probe")
        assert floor["fallback_wait_ms"] == 300
        talk(ep, alice, bob)
        assert served_locally(lifeline) == 1
    finally:
        far_cloud.resume()
