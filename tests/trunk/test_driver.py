"""The real driver against the simulated modems of every family, including each fault the notes name."""

from __future__ import annotations

import pytest

from gateway.trunk import tones
from gateway.trunk.call import CallState, EndReason
from gateway.trunk.driver import LinkState
from gateway.trunk.profiles import Family
from gateway.trunk.sim import FarEnd, Network, Outcome
from tests.trunk.conftest import Rig, RigFactory, eventually, wait_state

GSM = [Family.QUECTEL, Family.SIMCOM, Family.HUAWEI]


def states(rig: Rig) -> list[CallState]:
    return [e.state for e in rig.events]


@pytest.mark.parametrize("family", GSM)
async def test_bring_up_to_ready_with_identity_signal_operator_and_network_time(
    rig_factory: RigFactory, family: Family
) -> None:
    rig: Rig = await rig_factory(family)
    await wait_state(rig, LinkState.READY)
    status = rig.modem.status
    assert status.model and status.imei == rig.sim.config.serial
    assert status.signal is not None and status.signal.dbm == -67
    assert status.operator == "Lab Mobile" and status.voice and status.problem is None
    clock = rig.modem.network_time()
    assert clock is not None and clock.year == 2026 and clock.utcoffset() is not None
    # Echo was on until ATE0; every command after it got a clean reply.
    assert "ATE0" in rig.sim.commands
    assert status.as_dict()["state"] == "ready"


async def test_sim_pin_from_config_unlocks_the_sim(rig_factory: RigFactory) -> None:
    rig = await rig_factory(Family.QUECTEL, pin="4321", sim_pin="4321")
    await wait_state(rig, LinkState.READY)
    assert rig.sim.commands.count("AT+CPIN=****") == 1


async def test_a_wrong_pin_is_tried_once_only(rig_factory: RigFactory) -> None:
    rig = await rig_factory(Family.SIMCOM, pin="0000", sim_pin="4321")
    await eventually(lambda: "refused the configured PIN" in (rig.modem.status.problem or ""), "the PIN refusal")
    await eventually(lambda: rig.sim.commands.count("AT+CPIN?") >= 4, "the driver to keep checking the SIM")
    assert rig.sim.commands.count("AT+CPIN=****") == 1
    assert rig.sim.pin_attempts == 2 and rig.modem.state is LinkState.SIM


async def test_no_sim_is_reported_plainly(rig_factory: RigFactory) -> None:
    rig = await rig_factory(Family.HUAWEI, sim_inserted=False)
    await eventually(lambda: rig.modem.status.problem == "no SIM card", "the missing SIM to be reported")
    assert rig.modem.state is LinkState.SIM


async def test_lte_without_volte_is_detected_and_said_plainly(rig_factory: RigFactory) -> None:
    rig = await rig_factory(Family.QUECTEL, network=Network.LTE_NO_VOLTE)
    await eventually(lambda: "LTE without VoLTE" in (rig.modem.status.problem or ""), "the VoLTE problem")
    assert rig.modem.state is LinkState.REGISTERING
    rig.sim.set_network(Network.LTE_VOLTE)
    await wait_state(rig, LinkState.READY)


async def test_losing_the_network_goes_back_to_registering_and_recovers(rig_factory: RigFactory) -> None:
    rig = await rig_factory(Family.SIMCOM, network=Network.GSM)
    await wait_state(rig, LinkState.READY)
    rig.sim.set_network(Network.NONE)
    await wait_state(rig, LinkState.REGISTERING)
    rig.sim.set_network(Network.GSM)
    await wait_state(rig, LinkState.READY)


@pytest.mark.parametrize("family", GSM)
async def test_outgoing_call_with_audio_both_ways_dtmf_and_far_end_hangup(
    rig_factory: RigFactory, family: Family
) -> None:
    far = FarEnd(source=tones.Tone((1000.0,)), answer_after_s=1.0)
    rig: Rig = await rig_factory(family, far_end=far)
    await wait_state(rig, LinkState.READY)
    received = bytearray()
    two_khz = tones.Tone((2000.0,))

    def on_frame(frame: bytes) -> None:
        received.extend(frame)
        rig.modem.write_frame(two_khz.read(len(frame) // 2))  # the modem is the clock: one out per one in

    rig.modem.frame_sink = on_frame
    await rig.modem.dial("+4930123456")
    await eventually(lambda: CallState.ACTIVE in states(rig), "the far end to answer")
    assert states(rig)[:3] == [CallState.DIALING, CallState.ALERTING, CallState.ACTIVE]
    await eventually(lambda: len(received) >= 320 * 25 and len(far.heard) >= 320 * 25, "half a second of audio")
    assert tones.dominant(bytes(received[-320 * 20 :]), (1000.0, 2000.0)) == 1000.0
    assert tones.dominant(bytes(far.heard[-320 * 20 :]), (1000.0, 2000.0)) == 2000.0
    await rig.modem.send_dtmf("5")
    assert far.dtmf_received == ["5"] and far.dialled == ["+4930123456"]
    rig.sim.hang_up_far_end()
    await eventually(lambda: CallState.ENDED in states(rig), "the hang-up to arrive")
    assert rig.events[-1].reason is EndReason.NORMAL and rig.modem.tracker.state is CallState.IDLE


@pytest.mark.parametrize("family", GSM)
async def test_incoming_call_with_caller_id_answered_and_hung_up_by_us(rig_factory: RigFactory, family: Family) -> None:
    rig: Rig = await rig_factory(family)
    await wait_state(rig, LinkState.READY)
    rig.sim.incoming_call("+4915112345678")
    await eventually(lambda: any(e.number == "+4915112345678" for e in rig.events), "the caller ID")
    assert rig.events[0].state is CallState.INCOMING
    await rig.modem.answer()
    assert rig.sim.call is not None and rig.sim.call.stat == 0
    await rig.modem.hang_up()
    assert rig.sim.call is None and rig.events[-1].reason is EndReason.LOCAL


async def test_unanswered_incoming_call_ends_as_missed(rig_factory: RigFactory) -> None:
    rig = await rig_factory(Family.SIMCOM, max_rings=2)
    await wait_state(rig, LinkState.READY)
    rig.sim.incoming_call(None)
    await eventually(lambda: CallState.ENDED in states(rig), "the caller to give up")
    assert rig.events[-1].reason is EndReason.MISSED and rig.events[0].number is None


@pytest.mark.parametrize(
    ("outcome", "reason"), [(Outcome.BUSY, EndReason.BUSY), (Outcome.NO_ANSWER, EndReason.NO_ANSWER)]
)
async def test_busy_and_no_answer(rig_factory: RigFactory, outcome: Outcome, reason: EndReason) -> None:
    rig = await rig_factory(Family.QUECTEL, far_end=FarEnd(outcome=outcome))
    await wait_state(rig, LinkState.READY)
    await rig.modem.dial("0301234567")
    await eventually(lambda: CallState.ENDED in states(rig), f"{outcome.value} to end the call")
    assert rig.events[-1].reason is reason


async def test_a_swallowed_command_costs_one_timeout_not_the_link(rig_factory: RigFactory) -> None:
    rig = await rig_factory(Family.QUECTEL)
    await wait_state(rig, LinkState.READY)
    rig.sim.hang_commands = 1
    reply = await rig.modem.command("AT+CSQ")
    assert not reply.ok and reply.final.text == "timeout"
    assert (await rig.modem.command("AT+CSQ")).ok
    assert rig.modem.state is LinkState.READY and rig.modem.status.resets == 0


async def test_a_modem_that_stops_answering_is_reset_with_cfun_and_comes_back_renamed(rig_factory: RigFactory) -> None:
    rig = await rig_factory(Family.QUECTEL)
    await wait_state(rig, LinkState.READY)
    before = rig.modem.ports
    rig.sim.hang_commands = 2  # two polls go unanswered; AT+CFUN=1,1 then gets through
    await wait_state(rig, LinkState.RESET)
    await wait_state(rig, LinkState.READY)
    assert "AT+CFUN=1,1" in rig.sim.commands and rig.sim.resets == 1 and rig.usb.resets == 0
    assert rig.modem.ports is not None and before is not None and rig.modem.ports.at != before.at
    assert rig.modem.status.resets == 1
    # A call placed after the recovery works, audio included.
    frames: list[bytes] = []
    rig.modem.frame_sink = frames.append
    await rig.modem.dial("+4930123456")
    await eventually(lambda: CallState.ACTIVE in states(rig) and len(frames) >= 10, "a call with audio after the reset")


async def test_a_hung_port_is_recovered_by_a_usb_reset(rig_factory: RigFactory) -> None:
    rig = await rig_factory(Family.HUAWEI)
    await wait_state(rig, LinkState.READY)
    rig.sim.port_hung = True
    await wait_state(rig, LinkState.RESET)
    await wait_state(rig, LinkState.READY)
    assert rig.usb.resets == 1


async def test_unplugged_modem_is_found_again(rig_factory: RigFactory) -> None:
    rig = await rig_factory(Family.SIMCOM)
    await wait_state(rig, LinkState.READY)
    await rig.sim.replug(gap_s=20)  # a brown-out: gone for 0.4 s (scaled), back renamed
    await wait_state(rig, LinkState.READY)
    assert rig.modem.status.resets >= 1 and rig.usb.resets == 0


async def test_cpcmreg_first_error_is_retried_and_cured_by_creset_after_the_call(rig_factory: RigFactory) -> None:
    far = FarEnd(source=tones.Tone((1000.0,)), answer_after_s=0.5)
    rig = await rig_factory(Family.SIMCOM, far_end=far)
    await wait_state(rig, LinkState.READY)
    rig.sim.cpcmreg_error_next = True
    await rig.modem.dial("+4930123456")
    await eventually(lambda: rig.sim.commands.count("AT+CPCMREG=1") == 2, "the retried CPCMREG=1")
    rig.sim.hang_up_far_end()
    await wait_state(rig, LinkState.RESET)
    await wait_state(rig, LinkState.READY)
    assert "AT+CRESET" in rig.sim.commands and not rig.sim.pcm_degraded
    # The call after the reset has clean audio again.
    received = bytearray()
    rig.modem.frame_sink = received.extend
    rig.events.clear()
    await rig.modem.dial("+4930123456")
    await eventually(lambda: len(received) >= 320 * 20, "audio on the next call")
    assert tones.dominant(bytes(received[-320 * 10 :]), (1000.0, 2000.0)) == 1000.0


async def test_a_stalled_stream_is_counted_and_audio_resumes(rig_factory: RigFactory) -> None:
    rig = await rig_factory(Family.QUECTEL, far_end=FarEnd(source=tones.Tone((1000.0,)), answer_after_s=0.2))
    await wait_state(rig, LinkState.READY)
    frames: list[bytes] = []
    rig.modem.frame_sink = frames.append
    await rig.modem.dial("+4930123456")
    await eventually(lambda: len(frames) >= 10, "audio to flow")
    rig.sim.stall_stream(0.5)
    await eventually(lambda: rig.modem.status.stalls == 1, "the stall to be noticed", within=5)
    count = len(frames)
    await eventually(lambda: len(frames) > count + 10, "audio to resume")


async def test_sim_removed_in_service_is_reported(rig_factory: RigFactory) -> None:
    rig = await rig_factory(Family.QUECTEL)
    await wait_state(rig, LinkState.READY)
    rig.sim.remove_sim()
    await wait_state(rig, LinkState.SIM)
    await eventually(lambda: rig.modem.status.problem == "no SIM card", "the missing SIM to be reported")


async def test_sms_out_and_in(rig_factory: RigFactory) -> None:
    rig = await rig_factory(Family.QUECTEL)
    await wait_state(rig, LinkState.READY)
    got: list[str] = []
    rig.modem.sms_listeners.append(lambda sms: got.append(f"{sms.sender}: {sms.text}"))
    await rig.modem.send_sms("+4915112345678", "Lifeline: WAN down, serving calls locally")
    assert rig.sim.sms_sent == [("+4915112345678", "Lifeline: WAN down, serving calls locally")]
    rig.sim.deliver_sms("+4915199999999", "ok, thanks")
    await eventually(lambda: bool(got), "the incoming SMS")
    assert got == ["+4915199999999: ok, thanks"]


async def test_v253_analog_modem_incoming_call_with_caller_id_and_duplex_stream(rig_factory: RigFactory) -> None:
    far = FarEnd(source=tones.Tone((1000.0,)))
    rig = await rig_factory(Family.V253, far_end=far)
    await wait_state(rig, LinkState.READY)
    received = bytearray()
    two_khz = tones.Tone((2000.0,))

    def on_frame(frame: bytes) -> None:
        received.extend(frame)
        rig.modem.write_frame(two_khz.read(160))

    rig.modem.frame_sink = on_frame
    rig.sim.incoming_call("5551234")
    await eventually(lambda: any(e.number == "5551234" for e in rig.events), "the caller ID between rings")
    await rig.modem.answer()
    await eventually(lambda: rig.modem.streaming, "the AT+VTR stream")
    await eventually(lambda: len(received) >= 320 * 25 and len(far.heard) >= 320 * 25, "audio both ways")
    assert tones.dominant(bytes(received[-320 * 20 :]), (1000.0, 2000.0)) == 1000.0
    assert tones.dominant(bytes(far.heard[-320 * 20 :]), (1000.0, 2000.0)) == 2000.0
    rig.sim.far_end_dtmf("7")
    await eventually(lambda: rig.dtmf == ["7"], "the DLE DTMF digit")
    await rig.modem.hang_up()
    assert not rig.modem.streaming and rig.modem.tracker.state is CallState.IDLE


async def test_v253_outgoing_call_ends_on_the_busy_tone_event(rig_factory: RigFactory) -> None:
    rig = await rig_factory(Family.V253, far_end=FarEnd(outcome=Outcome.BUSY))
    await wait_state(rig, LinkState.READY)
    await rig.modem.dial("5551234")
    assert "AT+VLS=1" in rig.sim.commands and rig.sim.far_end.dialled == ["5551234"]
    # An analog line cannot say when the far end answers: the call counts as up once dialled.
    assert states(rig)[:2] == [CallState.DIALING, CallState.ACTIVE]
    await eventually(lambda: rig.modem.streaming, "the AT+VTR stream")
    await eventually(lambda: CallState.ENDED in states(rig), "the DLE b busy event to end the call")
    assert rig.events[-1].reason is EndReason.BUSY


async def test_huawei_hang_up_waits_for_orig_so_the_dongle_does_not_wedge(rig_factory: RigFactory) -> None:
    rig = await rig_factory(Family.HUAWEI)
    await wait_state(rig, LinkState.READY)
    await rig.modem.dial("+4930123456")
    await rig.modem.hang_up()  # at once: the simulated E173 wedges on AT+CHUP before ^ORIG, like the real one
    assert not rig.sim.port_hung and rig.sim.call is None
    assert rig.events[-1].reason is EndReason.LOCAL and rig.modem.state is LinkState.READY
