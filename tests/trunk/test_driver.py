"""The real driver against the simulated modems of every family (faults: test_fault_recovery.py)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
import structlog

from gateway.trunk import at, tones
from gateway.trunk.call import CallState, EndReason
from gateway.trunk.driver import Modem
from gateway.trunk.link import LinkState, ModemSettings
from gateway.trunk.ports import ByIdFinder
from gateway.trunk.profiles import Family, Gain, Profile, configured
from gateway.trunk.sim import FarEnd, Network, Outcome, SimConfig, SimModem, SimUsbReset
from tests.trunk.conftest import SCALE, TEST_TIMEOUTS, Rig, RigFactory, eventually, wait_state

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
    # The +CEREG URC can say so while the init commands still run (CONFIG): wait for the registration step.
    await eventually(
        lambda: "LTE without VoLTE" in (rig.modem.status.problem or "") and rig.modem.state is not LinkState.CONFIG,
        "the VoLTE problem",
    )
    assert rig.modem.state is LinkState.REGISTERING
    rig.sim.set_network(Network.LTE_VOLTE)
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


async def test_sms_out_and_in(rig_factory: RigFactory) -> None:
    rig = await rig_factory(Family.QUECTEL)
    await wait_state(rig, LinkState.READY)
    got: list[str] = []
    rig.modem.on_sms.add(lambda sms: got.append(f"{sms.sender}: {sms.text}"))
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


@contextlib.asynccontextmanager
async def simcom_rig(
    tmp_path: Path, far: FarEnd, profile: Profile, *, mic_gain: int | None = None, speaker_gain: int | None = None
) -> AsyncIterator[Rig]:
    """A SIM7600 simulator and the driver with this profile and these gains (set as the agent would)."""
    sim = SimModem(SimConfig(Family.SIMCOM, time_scale=SCALE), tmp_path / "by-id", far)
    await sim.start()
    settings = ModemSettings("sim-wide", timeouts=TEST_TIMEOUTS, mic_gain=mic_gain, speaker_gain=speaker_gain)
    modem = Modem(profile, ByIdFinder(profile, directory=tmp_path / "by-id"), settings, SimUsbReset(sim))
    rig = Rig(sim, modem, SimUsbReset(sim))
    modem.on_call.add(rig.events.append)
    await modem.start()
    try:
        yield rig
    finally:
        await modem.stop()
        await sim.stop()


async def test_sim7600_wideband_carries_640_byte_16_khz_frames_both_ways(tmp_path: Path) -> None:
    far = FarEnd(source=tones.Tone((1000.0,), rate=16000), answer_after_s=0.5)
    async with simcom_rig(tmp_path, far, configured(Family.SIMCOM, wideband=True), mic_gain=5, speaker_gain=6) as rig:
        await wait_state(rig, LinkState.READY)
        assert rig.sim.pcm_rate == 16000 and "AT+CPCMFRM=0" not in rig.sim.commands
        # The gains come after the family's init, and the modem took them.
        assert rig.sim.commands.index("AT+CMICGAIN=5") > rig.sim.commands.index("AT+CPCMFRM=1")
        assert rig.sim.gains == {"+CMICGAIN": (5,), "+COUTGAIN": (6,)}
        received = bytearray()
        sizes: set[int] = set()
        two_khz = tones.Tone((2000.0,), rate=16000)

        def on_frame(frame: bytes) -> None:
            sizes.add(len(frame))
            received.extend(frame)
            rig.modem.write_frame(two_khz.read(len(frame) // 2))

        rig.modem.frame_sink = on_frame
        await rig.modem.dial("+4930123456")
        await eventually(lambda: len(received) >= 640 * 25 and len(far.heard) >= 640 * 25, "half a second of audio")
        assert sizes == {640}
        assert tones.dominant(bytes(received[-640 * 20 :]), (1000.0, 2000.0), rate=16000) == 1000.0
        assert tones.dominant(bytes(far.heard[-640 * 20 :]), (1000.0, 2000.0), rate=16000) == 2000.0


async def test_narrowband_sim7600_is_told_8_khz_and_a_refused_gain_is_not_fatal(tmp_path: Path) -> None:
    # A profile that believes in a wider range than the modem: the modem refuses, the link comes up anyway.
    profile = replace(configured(Family.SIMCOM), mic_gain=Gain("AT+CMICGAIN", 0, 20))
    with structlog.testing.capture_logs() as logs:
        async with simcom_rig(tmp_path, FarEnd(), profile, mic_gain=12, speaker_gain=2) as rig:
            await wait_state(rig, LinkState.READY)
            assert "AT+CPCMFRM=0" in rig.sim.commands and rig.sim.pcm_rate == 8000
            assert "AT+CMICGAIN=12" in rig.sim.commands and rig.sim.gains["+CMICGAIN"] == (3,)  # its own, kept
            assert rig.sim.gains["+COUTGAIN"] == (2,)
    assert any(e["event"].startswith("gain refused") and e["command"] == "AT+CMICGAIN=12" for e in logs)


def test_the_driver_refuses_gains_its_family_cannot_take(tmp_path: Path) -> None:
    profile = configured(Family.HUAWEI)
    with pytest.raises(ValueError, match="speaker_gain: the huawei family has no gain command"):
        Modem(profile, ByIdFinder(profile, directory=tmp_path), ModemSettings(speaker_gain=3))
    profile = configured(Family.QUECTEL)
    with pytest.raises(ValueError, match="both 0"):
        Modem(profile, ByIdFinder(profile, directory=tmp_path), ModemSettings(mic_gain=0, speaker_gain=0))


EARLY_FREQS = (tones.RINGBACK_HZ, 1000.0, 2000.0)


@pytest.mark.parametrize(("family", "early"), [(Family.QUECTEL, True), (Family.HUAWEI, True), (Family.SIMCOM, False)])
async def test_the_ringback_before_the_answer_reaches_us_where_the_modem_sends_it(
    rig_factory: RigFactory, family: Family, early: bool
) -> None:
    # The far end rings for 0.6 s (30 at the test's time scale): the network's 425 Hz is on for the first second.
    far = FarEnd(source=tones.Tone((1000.0,)), answer_after_s=30.0)
    rig: Rig = await rig_factory(family, far_end=far)
    await wait_state(rig, LinkState.READY)
    assert rig.modem.profile.early_audio is early
    frames: list[tuple[CallState, bytes]] = []
    rig.modem.frame_sink = lambda frame: frames.append((rig.modem.tracker.state, frame))
    await rig.modem.dial("+4930123456")
    await eventually(lambda: CallState.ACTIVE in states(rig), "the far end to answer")
    await eventually(lambda: sum(s is CallState.ACTIVE for s, _ in frames) >= 20, "the far end's voice")
    ringing = b"".join(f for s, f in frames if s is CallState.ALERTING)
    answered = b"".join(f for s, f in frames if s is CallState.ACTIVE)
    assert tones.dominant(answered[-320 * 15 :], EARLY_FREQS) == 1000.0
    if early:
        assert len(ringing) >= 320 * 15, "no audio while the far end rang"
        assert tones.dominant(ringing, EARLY_FREQS) == tones.RINGBACK_HZ
    else:
        assert not ringing and all(s is CallState.ACTIVE for s, _ in frames)
    if family is Family.HUAWEI:
        # Sent at ^ORIG, so the dongle streams before ^CONN; not sent again at ^CONN.
        assert rig.sim.commands.count("AT^DDSETEX=2") == 1
    await rig.modem.hang_up()


async def test_an_unreachable_numbers_announcement_is_heard_before_the_call_fails(rig_factory: RigFactory) -> None:
    far = FarEnd(outcome=Outcome.UNREACHABLE, announcement=tones.special_information(), announcement_s=40.0)
    rig = await rig_factory(Family.QUECTEL, far_end=far)
    await wait_state(rig, LinkState.READY)
    frames: list[tuple[CallState, bytes]] = []
    rig.modem.frame_sink = lambda frame: frames.append((rig.modem.tracker.state, frame))
    await rig.modem.dial("+4930123456")
    await eventually(lambda: CallState.ENDED in states(rig), "the call to fail")
    assert states(rig) == [CallState.DIALING, CallState.ENDED]  # it never rang
    assert rig.events[-1].reason is EndReason.UNREACHABLE
    heard = b"".join(f for s, f in frames if s is CallState.DIALING)
    assert tones.tone_sequence(heard, (*tones.SIT_HZ, tones.RINGBACK_HZ))[:3] == list(tones.SIT_HZ)
    count = len(frames)
    await eventually(lambda: rig.sim.call is None, "the modem to be idle")
    assert len(frames) == count  # nothing after the end


def test_audio_read_mid_sample_between_calls_does_not_shift_the_next_call(tmp_path: Path) -> None:
    # A USB serial read ends anywhere; the driver drops what the modem sends between calls. If it
    # dropped half a sample, every later sample would be a byte off: speech turns into loud noise.
    modem = Modem(configured(Family.QUECTEL), ByIdFinder(configured(Family.QUECTEL), directory=tmp_path))
    frames: list[bytes] = []
    modem.frame_sink = frames.append
    stream = tones.Tone((1000.0,)).read(8000)  # one second of the modem's PCM, S16LE
    modem._on_audio_data(stream[:3])  # port callback: read while no call is up, ending mid-sample
    modem.tracker.feed(at.Urc("RING"))
    modem.tracker.answered()
    for pos in range(3, len(stream), 250):  # reads of odd sizes from here on
        modem._on_audio_data(stream[pos : pos + 250])
    assert len(frames) >= 20 and all(len(f) == 320 for f in frames)
    heard = b"".join(frames)
    assert heard == stream[4 : 4 + len(heard)]  # the modem's own samples, from the next whole one
