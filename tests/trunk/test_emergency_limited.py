"""Emergency calls in limited service: no SIM, a SIM asking for its PIN, a network refusing the SIM.

The real driver against the simulator (3GPP TS 22.101 §10: a modem places an emergency call on any
cell whatever its SIM), and the pool's choice of modem for an emergency call.
"""

from __future__ import annotations

import pytest

from gateway.trunk import at, tones
from gateway.trunk.call import CallState, CallTracker, EndReason
from gateway.trunk.errors import TrunkError
from gateway.trunk.link import LIMITED_SERVICE, LinkState
from gateway.trunk.pool import ModemPool, NoModemError
from gateway.trunk.profiles import Family
from gateway.trunk.sim import FarEnd, Network
from tests.trunk.conftest import Rig, RigFactory, eventually
from tests.trunk.test_dialplan import FakeModem as Member

LIMITED = {
    "no SIM": {"sim_inserted": False},
    "SIM asks for its PIN": {"sim_pin": "4321"},  # and no PIN is configured
    "registration denied": {"network": Network.DENIED},
}


async def limited_rig(rig_factory: RigFactory, family: Family, case: str) -> Rig:
    far = FarEnd(source=tones.Tone((1000.0,)), answer_after_s=0.5)
    rig: Rig = await rig_factory(family, far_end=far, **LIMITED[case])
    await eventually(lambda: rig.modem.emergency_capable, f"{case}: the modem to take emergency calls", 15)
    assert rig.modem.state in LIMITED_SERVICE and rig.modem.status.emergency_only
    assert rig.modem.status.as_dict()["emergency_only"] is True
    return rig


@pytest.mark.parametrize("case", list(LIMITED))
@pytest.mark.parametrize("family", [Family.QUECTEL, Family.SIMCOM])
async def test_112_goes_out_with_audio_in_limited_service(rig_factory: RigFactory, family: Family, case: str) -> None:
    rig = await limited_rig(rig_factory, family, case)
    frames: list[bytes] = []
    rig.modem.frame_sink = frames.append
    await rig.modem.dial("112", emergency=True)
    await eventually(lambda: rig.modem.tracker.state is CallState.ACTIVE, "the emergency call to be answered")
    assert rig.sim.emergency_calls == ["112"]
    answered = len(frames)  # the network's ringback came before
    await eventually(lambda: len(frames) >= answered + 10, "audio from the PSAP")
    assert tones.dominant(b"".join(frames[-5:]), (1000.0, 440.0)) == 1000.0
    size = rig.modem.profile.frame_bytes
    for _ in range(10):
        rig.modem.write_frame(bytes(size))
    await eventually(lambda: len(rig.sim.far_end.heard) >= 5 * size, "our audio to reach the PSAP")
    await rig.modem.hang_up()
    assert rig.modem.state in LIMITED_SERVICE  # still limited: nothing pretended the SIM was fine


@pytest.mark.parametrize("case", list(LIMITED))
async def test_ordinary_numbers_are_refused_in_limited_service(rig_factory: RigFactory, case: str) -> None:
    rig = await limited_rig(rig_factory, Family.QUECTEL, case)
    with pytest.raises(TrunkError, match="not ready"):
        await rig.modem.dial("+49301234567")  # the driver's rule: emergency numbers only
    with pytest.raises(TrunkError, match="not ready"):
        await rig.modem.dial("+49301234567", emergency=False)
    # And the modem itself would not have taken it either: only its emergency numbers get through.
    if case != "registration denied":
        reply = await rig.modem.command("ATD+49301234567;")
        assert not reply.ok and reply.final.code in (10, 11)
    assert rig.sim.emergency_calls == [] and rig.sim.call is None


async def test_the_simulated_modem_knows_the_3gpp_numbers_without_a_sim(rig_factory: RigFactory) -> None:
    rig = await limited_rig(rig_factory, Family.QUECTEL, "no SIM")
    reply = await rig.modem.command("ATD999;")  # TS 22.101: an emergency number on any handset with no SIM
    assert reply.ok and rig.sim.emergency_calls == ["999"]
    await rig.modem.command("AT+CHUP")
    await eventually(lambda: rig.sim.call is None, "the call to end")
    with_sim = await rig_factory(Family.QUECTEL, network=Network.DENIED)
    await eventually(lambda: with_sim.modem.emergency_capable, "the second modem in limited service")
    refused = await with_sim.modem.command("ATD999;")  # with a SIM, only 112, 911 and the SIM's own
    assert refused.ok and with_sim.sim.emergency_calls == []
    await eventually(lambda: with_sim.sim.call is None, "the ordinary call to fail on a network that denies the SIM")


async def test_the_sim_coming_back_during_an_emergency_call_does_not_disturb_it(rig_factory: RigFactory) -> None:
    rig = await limited_rig(rig_factory, Family.QUECTEL, "no SIM")
    await rig.modem.dial("112", emergency=True)
    await eventually(lambda: rig.modem.tracker.state is CallState.ACTIVE, "the emergency call")
    sent = len(rig.sim.commands)
    rig.sim.insert_sim()
    await eventually(lambda: rig.modem.state is LinkState.CONFIG, "the SIM to be seen")
    await eventually(lambda: rig.sim.commands.count("AT+CPIN?") >= 1, "the driver to look at the SIM")
    assert "AT+QPCMV=1,0" not in rig.sim.commands[sent:]  # no init under the call
    await rig.modem.hang_up()
    await eventually(lambda: rig.modem.state is LinkState.READY, "full service after the call", 15)
    assert "AT+QPCMV=1,0" in rig.sim.commands[sent:]


async def test_no_emergency_dial_before_the_modem_answers_at(rig_factory: RigFactory) -> None:
    rig = await rig_factory(Family.QUECTEL, sim_inserted=False)
    assert rig.modem.state in (LinkState.ABSENT, LinkState.PROBE) and not rig.modem.emergency_capable
    with pytest.raises(TrunkError, match="not ready"):
        await rig.modem.dial("112", emergency=True)
    await eventually(lambda: rig.modem.emergency_capable, "limited service")
    assert rig.sim.commands.count("AT+QPCMV=1,0") == 1  # the audio was set up although the SIM is missing


def test_the_pool_prefers_full_service_then_a_refused_sim_then_no_sim() -> None:
    no_sim, denied, busy = Member("a", LinkState.SIM), Member("b", LinkState.REGISTERING), Member("c", busy=True)
    pool = ModemPool([no_sim, denied, busy])
    choice = pool.pick(emergency=True)
    assert choice.member is busy and choice.preempt  # a registered line beats limited service
    busy.emergency_call = True
    assert pool.pick(emergency=True).member is denied
    denied.busy = True
    assert pool.pick(emergency=True).member is no_sim
    no_sim.link = LinkState.RESET  # not answering AT: not even an emergency call
    with pytest.raises(NoModemError) as none:
        pool.pick(emergency=True)
    assert none.value.status == 486
    with pytest.raises(NoModemError):
        ModemPool([Member("x", LinkState.SIM)]).pick()  # ordinary calls never use limited service


def test_the_psap_calling_back_at_once_is_not_ended_by_the_late_ok_of_our_hang_up() -> None:
    tracker = CallTracker(Family.QUECTEL)
    tracker.dialing("112")
    tracker.answered()
    tracker.hanging_up()  # AT+CHUP sent
    assert [e.reason for e in tracker.feed(at.Urc("NO CARRIER"))] == [EndReason.LOCAL]  # its end URC first
    assert [e.state for e in tracker.feed(at.Urc("RING"))] == [CallState.INCOMING]  # the PSAP calls back
    assert tracker.hung_up() == [] and tracker.state is CallState.INCOMING  # then AT+CHUP's OK is handled
