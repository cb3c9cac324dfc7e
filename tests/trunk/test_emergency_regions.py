"""An emergency call with two cloud regions (cloud-then-trunk): a silent primary hands it to the secondary.

Two Kamailios play the cloud's regions (a PSAP phone registered at the secondary as 112), the real
daemon held in NORMAL with its trunk agent and the pty modem simulator. The probes run rarely here, so
the calls below leave before any probe could notice the silent primary: the fall-over is per call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from gateway.lab.cloud import LabCloud
from gateway.lab.daemon import LifelineProcess
from gateway.lab.phones import SipEndpoint
from gateway.trunk.sim.thread import SimThread
from tests.conftest import PRIMARY, REALM, two_regions
from tests.trunk.lab import hang_up_trunk_call, tone_sim
from tests.trunk.test_emergency_normal import (
    PSAP,
    atds,
    caller,
    cloud_with_psap,
    dial,
    modem_dialled_112,
    start_held_in_normal,
    via_lifeline,
)

pytestmark = pytest.mark.usefixtures("fresh_phones")

CLOUD_TIMEOUT_MS = 1500
# "long": for the test that times the whole limit against two of them, with room for a busy box's trunk path.
LONG_CLOUD_TIMEOUT_MS = 4000


@pytest.fixture(scope="module")
def regions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LabCloud, LabCloud]]:
    with two_regions(tmp_path_factory.mktemp("regions"), cloud_with_psap) as clouds:
        yield clouds


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimThread]:
    with tone_sim(tmp_path_factory, 23) as thread:
        yield thread


# A Lifeline per test: a call's fall-over marks an SBC down in Kamailio until the next probe, a minute on.
# Parametrized "tcp": both SBCs over TCP (a stopped one refuses the connection: every send to it fails at once);
# "unmeasured": the per-request fallback never adapts to the round trip; "long": LONG_CLOUD_TIMEOUT_MS.
@pytest.fixture
def lifeline(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    regions: tuple[LabCloud, LabCloud],
    sim: SimThread,
) -> Iterator[LifelineProcess]:
    primary, secondary = regions
    sbcs = [primary.uri, secondary.uri]
    param = getattr(request, "param", None)
    if param == "tcp":
        sbcs = [f"{primary.uri};transport=tcp", f"{secondary.uri};transport=tcp"]
    settings = {
        "cloud": {"sbc": sbcs, "realm": REALM},
        # One probe at the start (both SBCs up, the RTT known), then none while the tests run.
        "health": {"sip_interval_s": 60},
        "emergency": {
            "normal": "cloud-then-trunk",
            "cloud_timeout_ms": LONG_CLOUD_TIMEOUT_MS if param == "long" else CLOUD_TIMEOUT_MS,
        },
    }
    if param == "unmeasured":
        # The per-request fallback waits its whole ceiling (2 s, longer than CLOUD_TIMEOUT_MS), as before
        # any round trip is measured: the primary may still have only its share of the emergency limit.
        settings["fallback"] = {"adaptive": False}
    daemon = start_held_in_normal(
        tmp_path_factory.mktemp("lifeline"),
        sim,
        settings,
        ready=lambda status: [sbc["state"] for sbc in status["health"]["sbcs"]] == ["up", "up"],
    )
    yield daemon
    daemon.stop()


@contextmanager
def answered_by_secondary(
    ep: SipEndpoint,
    regions: tuple[LabCloud, LabCloud],
    lifeline: LifelineProcess,
    sim: SimThread,
    outage: Callable[[], None],
    recovery: Callable[[], None],
) -> Iterator[None]:
    """In outage() of the primary Alice's 112 reaches the secondary's PSAP, not the modem; hang-up, recovery() after."""
    primary, secondary = regions
    alice = via_lifeline(ep, lifeline, primary, "1001")
    psap = ep.phone(PSAP[0], PSAP[1], domain=PRIMARY, registrar=secondary.uri)
    assert psap.register() == 200
    before = atds(sim)
    outage()
    try:
        call = dial(alice, "112")
        psap.ringing_call(15).answer_with(200)
        ep.wait_for(lambda: call.state == "CONFIRMED", 10, "the secondary region's PSAP to answer")
        assert atds(sim) == before, "the modem dialled though the secondary region was up"
        yield
        call.hang_up()
        ep.wait_for(lambda: call.state == "DISCONNECTED", 10, "the call to end")
    finally:
        recovery()
        psap.set_registration(False)
    ep.wait_for(lambda: psap.reg_codes[-1] == 200 and len(psap.reg_codes) >= 2, 10, "the PSAP to unregister")


def moved_to_the_next_sbc(ep: SipEndpoint, lifeline: LifelineProcess) -> str:
    """Wait for the daemon's log to tell of the call's move to the next cloud SBC; the whole log."""
    ep.wait_for(lambda: lifeline.logged("to the next cloud SBC"), 5, "the call's move to the next SBC in the log")
    return lifeline.log_path.read_text()


@pytest.mark.parametrize("lifeline", ["measured", "unmeasured"], indirect=True)
def test_a_silent_primary_region_hands_the_emergency_call_to_the_secondary_not_to_the_trunk(
    sip_endpoint: SipEndpoint, regions: tuple[LabCloud, LabCloud], lifeline: LifelineProcess, sim: SimThread
) -> None:
    ep = sip_endpoint
    with answered_by_secondary(ep, regions, lifeline, sim, regions[0].pause, regions[0].resume):
        assert lifeline.status()["health"]["sbcs"][0]["state"] == "up", "a probe saw the outage: not a per-call test"
        log = moved_to_the_next_sbc(ep, lifeline)
        assert "emergency call" in log and "to the next cloud SBC" in log


@pytest.mark.parametrize("lifeline", ["long"], indirect=True)
def test_both_regions_silent_the_trunk_takes_the_emergency_call_within_one_cloud_limit_not_one_per_region(
    sip_endpoint: SipEndpoint, regions: tuple[LabCloud, LabCloud], lifeline: LifelineProcess, sim: SimThread
) -> None:
    ep = sip_endpoint
    primary, secondary = regions
    alice, before = caller(ep, lifeline, primary, sim)
    primary.pause()
    secondary.pause()
    try:
        call, took = modem_dialled_112(ep, sim, alice, before)
        # The cloud as a whole had its limit, the secondary only what the primary left of it: a limit per
        # region would have the modem dial after two of them.
        assert LONG_CLOUD_TIMEOUT_MS / 1000 - 0.1 <= took < 2 * LONG_CLOUD_TIMEOUT_MS / 1000
        ep.wait_for(lambda: call.state == "CONFIRMED", 20, "the PSAP to answer over the modem")
        hang_up_trunk_call(ep, sim, call)
    finally:
        secondary.resume()
        primary.resume()


@pytest.mark.parametrize("lifeline", ["tcp"], indirect=True)
def test_a_primary_region_that_refuses_connections_hands_the_emergency_call_to_the_secondary_at_once(
    sip_endpoint: SipEndpoint, regions: tuple[LabCloud, LabCloud], lifeline: LifelineProcess, sim: SimThread
) -> None:
    ep = sip_endpoint
    # The primary's SBC dies; its host refuses connections, so every send to it fails at once.
    with answered_by_secondary(ep, regions, lifeline, sim, regions[0].stop, regions[0].start):
        log = moved_to_the_next_sbc(ep, lifeline)
        assert "emergency call" in log and "sending to the cloud failed" in log and "to the next cloud SBC" in log


@pytest.mark.parametrize("lifeline", ["tcp"], indirect=True)
def test_a_register_the_primary_region_cannot_even_be_sent_goes_to_the_secondary_not_back_as_477(
    sip_endpoint: SipEndpoint, regions: tuple[LabCloud, LabCloud], lifeline: LifelineProcess
) -> None:
    ep = sip_endpoint
    primary, secondary = regions
    alice = via_lifeline(ep, lifeline, primary, "1001")
    primary.stop()
    try:
        assert alice.register() == 200
        assert "1001" in secondary.bindings()
        moved = "sending to the cloud SBC failed"
        ep.wait_for(lambda: lifeline.logged(moved), 5, "the REGISTER's move to the next SBC in the log")
        lines = lifeline.log_path.read_text().splitlines()
        assert any("REGISTER" in line and "sending to the cloud SBC failed" in line for line in lines)
    finally:
        primary.start()
