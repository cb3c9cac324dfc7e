"""Emergency calls while the cloud is up (NORMAL, emergency.normal = cloud-then-trunk).

A Kamailio playing the cloud (with a PSAP phone registered at it as 112), the real daemon held in
NORMAL, its trunk agent and the pty modem simulator, pjsua2 phones registered at the cloud through
Lifeline. The cloud takes the call when it answers; when it is silent or refuses, the trunk does.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.lab.cloud import LabCloud
from gateway.lab.daemon import LifelineProcess
from gateway.lab.phones import Phone, PhoneCall, SipEndpoint
from gateway.mirror.records import Extension
from gateway.trunk.sim.thread import SimThread
from tests.conftest import CLOUD_HOST, PASSWORDS, REALM, lab_extensions, phone_via_lifeline, start_lab_cloud
from tests.sip.test_render import rendered
from tests.trunk.lab import hang_up_trunk_call, start_trunked, tone_sim

pytestmark = pytest.mark.usefixtures("fresh_phones")

AGENT = ("1009", "agent-normal-1009")
PSAP = ("112", "psap-secret-112")
CLOUD_TIMEOUT_MS = 800


def cloud_with_psap(workdir: Path, host: str) -> LabCloud:
    """A started lab cloud that knows the lab's extensions and the PSAP phone (112)."""
    psap = Extension.from_password(number=PSAP[0], auth_user=PSAP[0], realm=REALM, password=PSAP[1])
    return start_lab_cloud(workdir, host, [*lab_extensions(), psap])


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabCloud]:
    lab = cloud_with_psap(tmp_path_factory.mktemp("cloud"), CLOUD_HOST)
    yield lab
    lab.stop()


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimThread]:
    with tone_sim(tmp_path_factory, 17) as thread:
        yield thread


def start_held_in_normal(
    work: Path, sim: SimThread, settings: dict[str, Any], ready: Callable[[dict[str, Any]], bool] = lambda _: True
) -> LifelineProcess:
    """The daemon with agent 1009 (ring group 1002) on the simulated modem, held in NORMAL; once ready(status) too."""
    # Held in NORMAL by hand: a paused cloud shows the per-call fall-over alone, not outage detection.
    passwords = {**PASSWORDS, AGENT[0]: AGENT[1]}
    return start_trunked(
        work, sim.sim.by_id_dir, settings, passwords=passwords, ring_group=("1002",), mode="normal", also=ready
    )


@pytest.fixture(scope="module")
def lifeline(tmp_path_factory: pytest.TempPathFactory, cloud: LabCloud, sim: SimThread) -> Iterator[LifelineProcess]:
    emergency = {"normal": "cloud-then-trunk", "cloud_timeout_ms": CLOUD_TIMEOUT_MS}
    settings = {"cloud": {"sbc": cloud.uri, "realm": REALM}, "emergency": emergency}
    daemon = start_held_in_normal(tmp_path_factory.mktemp("lifeline"), sim, settings)
    yield daemon
    daemon.stop()


def via_lifeline(ep: SipEndpoint, lifeline: LifelineProcess, cloud: LabCloud, user: str) -> Phone:
    """A phone registered at the cloud with Lifeline as its outbound proxy."""
    p = phone_via_lifeline(ep, lifeline, cloud, user)
    assert p.register() == 200
    return p


def dial(p: Phone, number: str) -> PhoneCall:
    call = PhoneCall(p)
    call.make_call(f"sip:{number}@{p.domain}")
    p.calls.append(call)
    return call


def atds(sim: SimThread) -> int:
    return int(sim.call(lambda: len(sim.sim.dial_log)))


def caller(ep: SipEndpoint, lifeline: LifelineProcess, cloud: LabCloud, sim: SimThread) -> tuple[Phone, int]:
    """Alice (1001) registered at the cloud through Lifeline, and how many ATDs the modem has had so far."""
    return via_lifeline(ep, lifeline, cloud, "1001"), atds(sim)


def modem_dialled_112(ep: SipEndpoint, sim: SimThread, alice: Phone, before: int) -> tuple[PhoneCall, float]:
    """Alice dials 112 and the modem dials it next: her call, and the seconds from her dial to its ATD."""
    sent = time.monotonic()
    call = dial(alice, "112")
    ep.wait_for(lambda: atds(sim) > before, 10, "the modem to dial 112")
    at, command = sim.call(lambda: sim.sim.dial_log[before])
    assert command == "ATD112;"
    return call, at - sent


def test_the_cloud_takes_the_emergency_call_when_it_answers(
    sip_endpoint: SipEndpoint, cloud: LabCloud, lifeline: LifelineProcess, sim: SimThread
) -> None:
    ep = sip_endpoint
    alice = via_lifeline(ep, lifeline, cloud, "1001")
    psap = ep.phone(PSAP[0], PSAP[1], domain=CLOUD_HOST, registrar=cloud.uri)
    assert psap.register() == 200
    before = atds(sim)
    call = dial(alice, "112")
    psap.ringing_call(15).answer_with(200)
    ep.wait_for(lambda: call.state == "CONFIRMED", 10, "the cloud's PSAP to answer")
    assert atds(sim) == before  # the modem never dialled
    call.hang_up()
    ep.wait_for(lambda: call.state == "DISCONNECTED", 10, "the call to end")
    psap.set_registration(False)
    ep.wait_for(lambda: psap.reg_codes[-1] == 200 and len(psap.reg_codes) >= 2, 10, "the PSAP to unregister")


def test_a_silent_cloud_hands_the_emergency_call_to_the_trunk_within_its_limit(
    sip_endpoint: SipEndpoint, cloud: LabCloud, lifeline: LifelineProcess, sim: SimThread
) -> None:
    ep = sip_endpoint
    alice, before = caller(ep, lifeline, cloud, sim)
    cloud.pause()
    try:
        call, took = modem_dialled_112(ep, sim, alice, before)
        # It waited for the cloud first (tm's timers tick in 1/16 s; the timing goal is bench/emergency's).
        assert CLOUD_TIMEOUT_MS / 1000 - 0.1 <= took < 10
        ep.wait_for(lambda: call.state == "CONFIRMED", 20, "the PSAP to answer over the modem")
        assert lifeline.status()["mode"]["mode"] == "normal"
        hang_up_trunk_call(ep, sim, call)
    finally:
        cloud.resume()


def test_a_cloud_that_refuses_the_emergency_call_hands_it_to_the_trunk(
    sip_endpoint: SipEndpoint, cloud: LabCloud, lifeline: LifelineProcess, sim: SimThread
) -> None:
    ep = sip_endpoint
    alice, before = caller(ep, lifeline, cloud, sim)
    call = dial(alice, "112")  # nobody is registered as 112 at the cloud now: it refuses the call
    ep.wait_for(lambda: call.state == "CONFIRMED", 20, "the PSAP to answer over the modem")
    assert sim.call(lambda: [c for _, c in sim.sim.dial_log[before:]]) == ["ATD112;"]
    hang_up_trunk_call(ep, sim, call)


@pytest.mark.parametrize("mode", ["cloud", "trunk", "cloud-then-trunk"])
def test_each_normal_mode_renders_a_config_kamailio_accepts(tmp_path: Path, mode: str) -> None:
    cloud = {"cloud": {"sbc": "sip:127.0.0.2:5060"}, "emergency": {"normal": mode, "cloud_timeout_ms": 700}}
    text = rendered(tmp_path, cloud, False, "127.0.0.2")
    check = subprocess.run(["kamailio", "-c", "-f", str(text)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr[-2000:]
    defines = text.read_text().split("request_route")[0]
    assert ("#!define EMERGENCY_CLOUD_MS 700" in defines) is (mode == "cloud-then-trunk")
    assert ("#!define EMERGENCY_TRUNK" in defines) is (mode == "trunk")
