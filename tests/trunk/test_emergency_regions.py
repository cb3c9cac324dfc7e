"""An emergency call with two cloud regions (cloud-then-trunk): a silent primary hands it to the secondary.

Two Kamailios play the cloud's regions (a PSAP phone registered at the secondary as 112), the real
daemon held in NORMAL with its trunk agent and the pty modem simulator. The probes run rarely here, so
the calls below leave before any probe could notice the silent primary: the fall-over is per call.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from gateway.lab.cloud import LabCloud
from gateway.lab.daemon import LifelineProcess
from gateway.lab.phones import Phone, PhoneCall, SipEndpoint
from gateway.trunk import tones
from gateway.trunk.sim import FarEnd
from gateway.trunk.sim.thread import SimThread
from tests.conftest import PRIMARY, REALM, two_regions
from tests.trunk.lab import quectel_sim
from tests.trunk.test_emergency_normal import PSAP, atds, cloud_with_psap, dial, start_held_in_normal, via_lifeline

pytestmark = pytest.mark.usefixtures("fresh_phones")

CLOUD_TIMEOUT_MS = 1500


@pytest.fixture(scope="module")
def regions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LabCloud, LabCloud]]:
    with two_regions(tmp_path_factory.mktemp("regions"), cloud_with_psap) as clouds:
        yield clouds


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimThread]:
    far = FarEnd(source=tones.Tone((1000.0,)), answer_after_s=0.5)
    with quectel_sim(tmp_path_factory.mktemp("sim") / "by-id", 23, far) as thread:
        yield thread


# A Lifeline per test: a call's fall-over marks an SBC down in Kamailio until the next probe, a minute on.
# Parametrized "tcp": both SBCs over TCP (a stopped one refuses the connection: every send to it fails at once);
# "unmeasured": the per-request fallback never adapts to the round trip.
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
        "emergency": {"normal": "cloud-then-trunk", "cloud_timeout_ms": CLOUD_TIMEOUT_MS},
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


def answered_by_secondary(ep: SipEndpoint, alice: Phone, psap: Phone, sim: SimThread, before: int) -> PhoneCall:
    """Alice dials 112 and the secondary region's PSAP answers; the modem never dialled."""
    call = dial(alice, "112")
    psap.ringing_call(15).answer_with(200)
    ep.wait_for(lambda: call.state == "CONFIRMED", 10, "the secondary region's PSAP to answer")
    assert atds(sim) == before, "the modem dialled though the secondary region was up"
    return call


def hang_up(ep: SipEndpoint, call: PhoneCall) -> None:
    call.hang_up()
    ep.wait_for(lambda: call.state == "DISCONNECTED", 10, "the call to end")


@pytest.mark.parametrize("lifeline", ["measured", "unmeasured"], indirect=True)
def test_a_silent_primary_region_hands_the_emergency_call_to_the_secondary_not_to_the_trunk(
    sip_endpoint: SipEndpoint, regions: tuple[LabCloud, LabCloud], lifeline: LifelineProcess, sim: SimThread
) -> None:
    ep = sip_endpoint
    primary, secondary = regions
    alice = via_lifeline(ep, lifeline, primary, "1001")
    psap = ep.phone(PSAP[0], PSAP[1], domain=PRIMARY, registrar=secondary.uri)
    assert psap.register() == 200
    before = atds(sim)
    primary.pause()
    try:
        call = answered_by_secondary(ep, alice, psap, sim, before)
        assert lifeline.status()["health"]["sbcs"][0]["state"] == "up", "a probe saw the outage: not a per-call test"
        ep.wait_for(lambda: lifeline.logged("to the next cloud SBC"), 5, "the call's move to the next SBC in the log")
        log = lifeline.log_path.read_text()
        assert "emergency call" in log and "to the next cloud SBC" in log
        hang_up(ep, call)
    finally:
        primary.resume()
        psap.set_registration(False)
    ep.wait_for(lambda: psap.reg_codes[-1] == 200 and len(psap.reg_codes) >= 2, 10, "the PSAP to unregister")


def test_both_regions_silent_the_trunk_takes_the_emergency_call_within_one_cloud_limit_not_one_per_region(
    sip_endpoint: SipEndpoint, regions: tuple[LabCloud, LabCloud], lifeline: LifelineProcess, sim: SimThread
) -> None:
    ep = sip_endpoint
    primary, secondary = regions
    alice = via_lifeline(ep, lifeline, primary, "1001")
    before = atds(sim)
    primary.pause()
    secondary.pause()
    try:
        sent = time.monotonic()
        call = dial(alice, "112")
        ep.wait_for(lambda: atds(sim) > before, 10, "the modem to dial 112")
        at, command = sim.call(lambda: sim.sim.dial_log[before])
        assert command == "ATD112;"
        # The cloud as a whole had CLOUD_TIMEOUT_MS, the secondary only what the primary left of it: a
        # limit per region would have the modem dial after two of them.
        assert CLOUD_TIMEOUT_MS / 1000 - 0.1 <= at - sent < 2 * CLOUD_TIMEOUT_MS / 1000
        ep.wait_for(lambda: call.state == "CONFIRMED", 20, "the PSAP to answer over the modem")
        call.hang_up()
        ep.wait_for(lambda: sim.call(lambda: sim.sim.call is None), 10, "the modem call to end")
    finally:
        secondary.resume()
        primary.resume()


@pytest.mark.parametrize("lifeline", ["tcp"], indirect=True)
def test_a_primary_region_that_refuses_connections_hands_the_emergency_call_to_the_secondary_at_once(
    sip_endpoint: SipEndpoint, regions: tuple[LabCloud, LabCloud], lifeline: LifelineProcess, sim: SimThread
) -> None:
    ep = sip_endpoint
    primary, secondary = regions
    alice = via_lifeline(ep, lifeline, primary, "1001")
    psap = ep.phone(PSAP[0], PSAP[1], domain=PRIMARY, registrar=secondary.uri)
    assert psap.register() == 200
    before = atds(sim)
    # The primary's SBC dies; its host refuses connections, so every send to it fails at once.
    primary.stop()
    try:
        call = answered_by_secondary(ep, alice, psap, sim, before)
        ep.wait_for(lambda: lifeline.logged("to the next cloud SBC"), 5, "the call's move to the next SBC in the log")
        log = lifeline.log_path.read_text()
        assert "emergency call" in log and "sending to the cloud failed" in log and "to the next cloud SBC" in log
        hang_up(ep, call)
    finally:
        primary.start()
        psap.set_registration(False)
    ep.wait_for(lambda: psap.reg_codes[-1] == 200 and len(psap.reg_codes) >= 2, 10, "the PSAP to unregister")


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
