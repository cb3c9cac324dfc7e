"""End to end: phones → Lifeline's Kamailio (SURVIVAL) → trunk agent (own process) → simulated modem.

Real parts throughout: the daemon and its Kamailio, the trunk agent process it supervises with
pjsua2 and the driver, pjsua2 phones in this process, and the pty modem simulator on a thread.
Audio is checked by frequency: the far end plays 1 kHz, the phone 2 kHz.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pjsua2 as pj
import pytest

from gateway.lab.daemon import LifelineProcess
from gateway.lab.phones import Phone, PhoneCall, SipEndpoint
from gateway.trunk import tones
from gateway.trunk.sim import Outcome
from gateway.trunk.sim.thread import SimThread
from tests.trunk.lab import CALLER, DOMAIN, hang_up_trunk_call, leave_phones, phone, start_trunked, tone_sim

ADMIN = "+4915199990000"


class RecordingCall(PhoneCall):
    """A lab phone call (digits, tone, recording: see PhoneCall) that can swap its tone and record at once."""

    @property
    def codes(self) -> list[int]:
        """The status code of each state change (183 while early, 200, ...)."""
        return self.record.codes

    def play_and_record(self, freq: float, wav: Path) -> None:
        """Replace the lab phone's 440 Hz with freq, and record what the phone hears."""
        self.play(int(freq))
        self.record_to(wav)


# One daemon, agent and simulated modem for the whole module (starting them is most of the time);
# `settle` puts the modem back to idle after each test.
@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimThread]:
    # max_rings=400: a patient caller, 80 s
    with tone_sim(tmp_path_factory, 3, answer_after_s=1.0, max_rings=400) as thread:
        yield thread


@pytest.fixture(scope="module")
def trunked(tmp_path_factory: pytest.TempPathFactory, sim: SimThread) -> Iterator[LifelineProcess]:
    extra = f'sms_admins = ["{ADMIN}"]\npoll_s = 1.0\ncommand_timeout_s = 1.0\n'
    daemon = start_trunked(tmp_path_factory.mktemp("trunk"), sim.sim.by_id_dir, {}, extra)
    yield daemon
    daemon.stop()


@pytest.fixture(autouse=True)
def settle(request: pytest.FixtureRequest, sim: SimThread, trunked: LifelineProcess) -> Iterator[None]:
    """After each test: its phones leave, the modem is idle and ready again for the next."""
    yield
    leave_phones(request)
    sim.call(sim.sim.hang_up_far_end)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        trunk = trunked.status().get("trunk") or {}
        modem = (trunk.get("modems") or [{}])[0]
        if not trunk.get("calls") and modem.get("state") == "ready" and modem.get("call") == "idle":
            return
        time.sleep(0.1)
    raise AssertionError(f"the trunk did not settle: {trunk}")


def dial(p: Phone, number: str) -> RecordingCall:
    call = RecordingCall(p)
    call.make_call(f"sip:{number}@{p.domain}")
    p.calls.append(call)
    return call


def test_outbound_call_audio_both_ways_dtmf_and_hangups(
    sip_endpoint: SipEndpoint, trunked: LifelineProcess, sim: SimThread, tmp_path: Path
) -> None:
    ep = sip_endpoint
    alice = phone(ep, trunked, "1001")
    call = dial(alice, "030 1234567".replace(" ", ""))
    ep.wait_for(lambda: call.state == "CONFIRMED", 20, "the far end to answer the trunk call")
    assert "EARLY" in call.record.states  # 183 while the mobile side rang (an EC25 sends its ringback)
    assert sim.call(lambda: sim.sim.far_end.dialled[-1]) == "+49301234567"
    ep.wait_for(lambda: call.media_status == pj.PJSUA_CALL_MEDIA_ACTIVE, 10, "media")
    wav = tmp_path / "alice.wav"
    call.play_and_record(2000, wav)
    heard_before = sim.call(lambda: len(sim.sim.far_end.heard))
    ep.wait_for(
        lambda: sim.call(lambda: len(sim.sim.far_end.heard)) > heard_before + 16000 * 2, 15, "two seconds of audio"
    )
    call.stop_recording()  # flush the WAV
    ep.pump(50)
    assert tones.dominant(ep.recording(wav)[-8000:], (1000.0, 2000.0, 440.0)) == 1000.0
    far_heard = sim.call(lambda: bytes(sim.sim.far_end.heard[-8000:]))
    assert tones.dominant(far_heard, (1000.0, 2000.0, 440.0)) == 2000.0

    digits_before = sim.call(lambda: len(sim.sim.far_end.dtmf_received))
    call.dial_dtmf("5")
    ep.wait_for(
        lambda: sim.call(lambda: sim.sim.far_end.dtmf_received[digits_before:]) == ["5"], 10, "AT+VTS=5 at the modem"
    )
    sim.call(sim.sim.far_end_dtmf, "7")
    ep.wait_for(lambda: call.digits == ["7"], 10, "the far end's 7 at the phone")

    sim.call(sim.sim.hang_up_far_end)
    ep.wait_for(lambda: call.state == "DISCONNECTED", 10, "the far end's hang-up to reach the phone")
    call.stop_media()

    # And the other way: the phone hangs up, the modem call ends.
    again = dial(alice, "0301234567")
    ep.wait_for(lambda: again.state == "CONFIRMED", 20, "the second call")
    hang_up_trunk_call(ep, sim, again)


EARLY_FREQS = (tones.RINGBACK_HZ, 1000.0, 2000.0, 440.0)


def audio_bridged(lifeline: LifelineProcess, since: int) -> int:
    """How often the agent bridged a call's audio since offset since of the daemon's log."""
    with lifeline.log_path.open("rb") as log:
        log.seek(since)
        return sum(b"audio bridged" in line for line in log)


def test_outbound_call_hears_the_networks_ringback_as_early_media_then_the_far_end(
    sip_endpoint: SipEndpoint, trunked: LifelineProcess, sim: SimThread, tmp_path: Path
) -> None:
    ep = sip_endpoint
    alice = phone(ep, trunked, "1001")
    # 6.5 s of ringing at the module's time scale: the ringback (1 s on, 4 s off, in real time) comes on
    # again after 5 s, so the recording hears it even when a busy box bridges the 183's audio late.
    sim.call(setattr, sim.sim.far_end, "answer_after_s", 130.0)
    try:
        log_from = trunked.log_path.stat().st_size
        call = dial(alice, "0301234567")
        ep.wait_for(lambda: call.state == "EARLY" and call.media_status == pj.PJSUA_CALL_MEDIA_ACTIVE, 20, "183")
        before_answer = tmp_path / "ringing.wav"
        call.record_to(before_answer)
        ep.wait_for(lambda: call.state == "CONFIRMED", 20, "the far end to answer")
        call.stop_recording()
        after_answer = tmp_path / "answered.wav"
        call.record_to(after_answer)
        heard = sim.call(lambda: len(sim.sim.far_end.heard))
        ep.wait_for(lambda: sim.call(lambda: len(sim.sim.far_end.heard)) > heard + 16000, 10, "a second of talk")
        call.stop_recording()
        ep.pump(50)
    finally:
        sim.call(setattr, sim.sim.far_end, "answer_after_s", 1.0)
    early = [code for code, state in zip(call.codes, call.record.states, strict=True) if state == "EARLY"]
    assert early and set(early) == {183}, call.codes  # Session Progress, with SDP: no 180 at all
    assert call.codes[-1] == 200
    ringing = ep.recording(before_answer)
    assert len(ringing) >= 8000 * 2, "less than a second recorded before the answer"
    assert tones.dominant(ringing, EARLY_FREQS) == tones.RINGBACK_HZ
    assert tones.dominant(ep.recording(after_answer)[-8000:], EARLY_FREQS) == 1000.0
    # One bridge from the 183 on: the answer neither re-bridged nor interrupted the audio.
    assert audio_bridged(trunked, log_from) == 1
    hang_up_trunk_call(ep, sim, call)


def test_an_unreachable_numbers_announcement_is_heard_before_the_failure(
    sip_endpoint: SipEndpoint, trunked: LifelineProcess, sim: SimThread, tmp_path: Path
) -> None:
    ep = sip_endpoint
    alice = phone(ep, trunked, "1001")
    far = sim.sim.far_end

    def unreachable() -> None:
        far.outcome, far.announcement, far.announcement_s = Outcome.UNREACHABLE, tones.special_information(), 160.0

    def reachable() -> None:
        far.outcome, far.announcement = Outcome.ANSWER, None

    # 8 s of announcement at the module's time scale, then the call fails: its three tones (real time,
    # every 2.5 s) come round three times, so a busy box that bridges the 183 late still records them.
    sim.call(unreachable)
    try:
        heard_before = sim.call(lambda: len(far.heard))
        call = dial(alice, "0301234567")
        ep.wait_for(lambda: call.state == "EARLY" and call.media_status == pj.PJSUA_CALL_MEDIA_ACTIVE, 20, "183")
        wav = tmp_path / "announcement.wav"
        call.play_and_record(2000, wav)  # the phone talks too: nobody may hear it
        ep.wait_for(lambda: call.state == "DISCONNECTED", 20, "the call to fail")
        call.stop_recording()
        call.stop_media()
        ep.pump(50)
    finally:
        sim.call(reachable)
    assert 183 in call.codes
    # The agent's 503 for EndReason.UNREACHABLE: tm would relay it as 500 (RFC 3261 16.7), so
    # Kamailio gives the trunk's 503 as its own, with the agent's reason.
    assert (call.record.last_code, call.record.last_reason) == (503, "Mobile Network Unreachable")
    heard = tones.tone_sequence(ep.recording(wav), (*tones.SIT_HZ, tones.RINGBACK_HZ, 2000.0, 440.0))
    assert any(heard[i : i + 3] == list(tones.SIT_HZ) for i in range(len(heard))), heard
    assert sim.call(lambda: len(far.heard)) == heard_before  # an unanswered call carries nothing to the far end


def test_inbound_call_rings_the_group_with_caller_id(
    sip_endpoint: SipEndpoint, trunked: LifelineProcess, sim: SimThread
) -> None:
    ep = sip_endpoint
    alice, bob = phone(ep, trunked, "1001"), phone(ep, trunked, "1002")
    sim.call(sim.sim.incoming_call, CALLER)
    a, b = alice.ringing_call(15), bob.ringing_call(15)
    shown = b.remote_uri
    assert CALLER in a.remote_uri and CALLER in shown
    b.answer_with(200)
    ep.wait_for(lambda: b.state == "CONFIRMED", 10, "bob's answer to be confirmed")
    ep.wait_for(lambda: a.state == "DISCONNECTED", 10, "alice to stop ringing")
    ep.wait_for(lambda: sim.call(lambda: sim.sim.call is not None and sim.sim.call.stat == 0), 10, "ATA")
    hang_up_trunk_call(ep, sim, b)

    # The caller's number is the From user, so calling back from the phone's history works.
    back = shown.split("sip:", 1)[1].split("@", 1)[0]
    assert back == CALLER
    callback = dial(bob, back)
    ep.wait_for(lambda: callback.state == "CONFIRMED", 20, "the call back through the trunk")
    assert sim.call(lambda: sim.sim.far_end.dialled[-1]) == CALLER
    hang_up_trunk_call(ep, sim, callback, "the call back to end")


def test_refusals_and_emergency_preemption(sip_endpoint: SipEndpoint, trunked: LifelineProcess, sim: SimThread) -> None:
    ep = sip_endpoint
    alice, bob = phone(ep, trunked, "1001"), phone(ep, trunked, "1002")
    abroad = dial(alice, "00442079460018")
    ep.wait_for(lambda: abroad.state == "DISCONNECTED", 10, "the international call to be refused")
    assert (abroad.record.last_code, abroad.record.last_reason) == (403, "International calls not allowed")

    ordinary = dial(alice, "0301234567")
    ep.wait_for(lambda: ordinary.state == "CONFIRMED", 20, "the ordinary call")
    busy = dial(bob, "0309876543")
    ep.wait_for(lambda: busy.state == "DISCONNECTED", 10, "the second call to find the line busy")
    assert busy.record.last_code == 486

    emergency = dial(bob, "112")
    ep.wait_for(lambda: ordinary.state == "DISCONNECTED", 15, "the ordinary call to make way")
    ep.wait_for(lambda: emergency.state == "CONFIRMED", 20, "the emergency call")
    assert sim.call(lambda: list(sim.sim.far_end.dialled))[-1] == "112"
    hang_up_trunk_call(ep, sim, emergency, "the emergency call to end")


def test_alerts_go_out_as_sms_and_incoming_sms_is_forwarded(trunked: LifelineProcess, sim: SimThread) -> None:
    def sent() -> list[tuple[str, str]]:
        return list(sim.call(lambda: list(sim.sim.sms_sent)))

    deadline = time.monotonic() + 30
    while not any(to == ADMIN and "survival" in text for to, text in sent()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert any(to == ADMIN and "normal -> survival" in text for to, text in sent()), sent()
    sim.call(sim.sim.deliver_sms, "+4917012345678", "Are you still there?")
    deadline = time.monotonic() + 30
    while not any("Are you still there?" in text for _, text in sent()) and time.monotonic() < deadline:
        time.sleep(0.2)
    forwarded = [text for to, text in sent() if "Are you still there?" in text]
    assert forwarded and "+4917012345678" in forwarded[0]


def test_an_installer_checks_the_trunk_and_sends_a_test_sms(trunked: LifelineProcess, sim: SimThread) -> None:
    status = trunked.cli("trunk", "status")
    assert "lte0: READY" in status.stdout and "Lab Mobile" in status.stdout
    sent = trunked.cli("trunk", "sms", "+4915199990001", "Ladder test")
    assert sent.stdout.strip() == "SMS to +4915199990001: sent"
    assert ("+4915199990001", "Ladder test") in sim.call(lambda: list(sim.sim.sms_sent))
    bad = trunked.cli("trunk", "sms", "0151 999", check=False)
    assert bad.returncode == 1 and "'0151 999' is not in E.164 form" in bad.stderr


def test_a_wedged_modem_is_reset_under_lifeline_and_the_next_call_works(
    sip_endpoint: SipEndpoint, trunked: LifelineProcess, sim: SimThread
) -> None:
    ep = sip_endpoint
    ports_before = sim.call(lambda: sim.sim.at_port.name if sim.sim.at_port else None)
    resets_before = sim.call(lambda: sim.sim.resets)
    # The modem swallows two commands: the agent's driver resets it (AT+CFUN=1,1), waits for it
    # to re-enumerate under new names, and brings it up again — Lifeline keeps running.
    sim.call(setattr, sim.sim, "hang_commands", 2)
    deadline = time.monotonic() + 90
    modem: dict[str, Any] = {}
    while time.monotonic() < deadline:
        modem = (trunked.status().get("trunk") or {}).get("modems", [{}])[0]
        if modem.get("resets", 0) >= 1 and modem.get("state") == "ready" and modem.get("ident"):
            break
        time.sleep(0.3)
    assert modem.get("state") == "ready" and modem.get("resets", 0) >= 1, modem

    # The installer sees it in `lifeline status`: the modem's fall and its return, with the reason.
    def trunk_events() -> list[str]:
        return [e["message"] for e in trunked.status()["events"] if e["kind"] == "trunk"]

    deadline = time.monotonic() + 15  # the daemon looks at the agent every 2 s
    while not any(m.endswith("→ ready") for m in trunk_events()) and time.monotonic() < deadline:
        time.sleep(0.2)
    events = trunk_events()
    assert any(m.startswith("modem lte0: ready → reset") for m in events), events
    assert any(m.endswith("→ ready") for m in events), events
    assert sim.call(lambda: sim.sim.resets) == resets_before + 1
    assert sim.call(lambda: sim.sim.at_port.name if sim.sim.at_port else None) != ports_before
    alice = phone(ep, trunked, "1001")
    call = dial(alice, "0301234567")
    ep.wait_for(lambda: call.state == "CONFIRMED", 20, "a call after the reset")
    hang_up_trunk_call(ep, sim, call, "the call to end")


def test_blind_transfer_of_a_trunk_call_to_another_extension(
    sip_endpoint: SipEndpoint, trunked: LifelineProcess, sim: SimThread
) -> None:
    ep = sip_endpoint
    alice, bob = phone(ep, trunked, "1001"), phone(ep, trunked, "1002")
    call = dial(alice, "0301234567")
    ep.wait_for(lambda: call.state == "CONFIRMED", 20, "the trunk call")
    call.transfer(f"sip:1002@{DOMAIN}")
    transferred = bob.ringing_call(15)
    transferred.answer_with(200)
    ep.wait_for(lambda: transferred.state == "CONFIRMED", 10, "bob to take the transferred call")
    ep.wait_for(lambda: call.state == "DISCONNECTED", 10, "alice to drop out")
    assert sim.call(lambda: sim.sim.call is not None and sim.sim.call.stat == 0)  # the mobile side never noticed
    # Bob's phone plays 440 Hz: the far end now hears bob.
    start = sim.call(lambda: len(sim.sim.far_end.heard))
    ep.wait_for(lambda: sim.call(lambda: len(sim.sim.far_end.heard)) > start + 16000, 10, "a second of bob's audio")
    assert tones.dominant(sim.call(lambda: bytes(sim.sim.far_end.heard[-8000:])), (440.0, 1000.0, 2000.0)) == 440.0
    hang_up_trunk_call(ep, sim, transferred)


def test_a_trunk_call_cannot_be_transferred_to_an_outside_number(
    sip_endpoint: SipEndpoint, trunked: LifelineProcess, sim: SimThread
) -> None:
    # An outside caller passed on to another outside number would hold two modem lines under nobody's
    # reach or limits: the classic toll-fraud trombone. The call stays with the phone that tried.
    ep = sip_endpoint
    alice = phone(ep, trunked, "1001")
    call = dial(alice, "0301234567")
    ep.wait_for(lambda: call.state == "CONFIRMED", 20, "the trunk call")
    dialled = sim.call(lambda: len(sim.sim.far_end.dialled))
    refused_before = len(refusals(trunked))
    call.transfer(f"sip:0307654321@{DOMAIN}")
    ep.wait_for(lambda: len(refusals(trunked)) > refused_before, 15, "Kamailio to refuse the transfer")
    ep.pump(500)  # the agent hears the 403 and keeps the call with alice
    assert call.state == "CONFIRMED"
    assert sim.call(lambda: len(sim.sim.far_end.dialled)) == dialled  # no second line was dialled
    hang_up_trunk_call(ep, sim, call)


def refusals(daemon: LifelineProcess) -> list[str]:
    """Kamailio's log lines that refused a transfer to an outside number."""
    return [line for line in daemon.log_path.read_text().splitlines() if "transfer to an outside number" in line]


def noise_runs(pcm: bytes, tone: float, since_s: float = 0.0, block_ms: int = 20) -> list[int]:
    """Lengths (ms) of the runs of blocks that are not `tone` at its usual level, from its first to its last hearing.

    A run over before since_s (seconds into the recording) is left out: the call's audio settling in
    as it starts is no lost byte's doing.
    """
    size = 8000 * block_ms // 1000 * 2
    blocks = [pcm[i : i + size] for i in range(0, len(pcm) - size + 1, size)]
    levels = [tones.rms(tones.from_bytes(b)) for b in blocks]
    usual = sorted(levels)[len(levels) // 2]
    # A block counts as heard when the tone dominates at its own level: a phone's codec upset by a
    # burst of noise plays the tone back loud and clipped for a while, which is noise to a listener.
    heard = [
        tones.dominant(b, (tone, 2000.0, 440.0)) == tone and 0.5 * usual <= level <= 1.5 * usual
        for b, level in zip(blocks, levels, strict=True)
    ]
    first, last = heard.index(True), len(heard) - 1 - heard[::-1].index(True)
    runs, run = [], 0
    for index in range(first, last + 1):
        if heard[index]:
            if run and index * block_ms >= since_s * 1000:
                runs.append(run * block_ms)
            run = 0
        else:
            run += 1
    return runs


def test_the_phone_hears_the_far_end_again_within_200_ms_of_each_lost_byte(
    sip_endpoint: SipEndpoint, trunked: LifelineProcess, sim: SimThread, tmp_path: Path
) -> None:
    # A USB serial overrun loses bytes at any moment; an odd count shifts every later sample by a
    # byte (loud noise until the call ends) unless the driver finds the samples again.
    seed = int(time.time() * 1000) % 100_000
    print(f"seed={seed}")
    rng = random.Random(seed)
    ep = sip_endpoint
    alice = phone(ep, trunked, "1001")
    call = dial(alice, "0301234567")
    ep.wait_for(lambda: call.state == "CONFIRMED" and call.media_status == pj.PJSUA_CALL_MEDIA_ACTIVE, 20, "the call")
    before = (trunked.status()["trunk"]["modems"][0]).get("realignments", 0)
    wav = tmp_path / "heard.wav"
    call.record_to(wav)
    recording = time.monotonic()  # the recorder runs by now: what happens later lands no earlier in the file
    already = sim.call(lambda: len(sim.sim.drops))
    losses = [rng.choice((1, 3, 5, 7, 161)) for _ in range(5)]
    for lost in losses:
        moment = time.monotonic() + rng.uniform(0.5, 0.9)  # a random point of the call, frames apart
        ep.wait_for(lambda m=moment: time.monotonic() >= m, 5, "the next moment")
        sim.call(sim.sim.drop_audio_bytes, lost)
    settled = time.monotonic() + 0.8
    ep.wait_for(lambda: time.monotonic() >= settled, 5, "the last loss to pass")
    call.stop_recording()
    ep.pump(50)
    drops = sim.call(lambda: sim.sim.drops[already:])  # when the bytes were cut out of the stream
    assert len(drops) >= len(losses)
    # From the first loss on, less a margin for the phone's audio running behind its clock on a busy box:
    # a gap while the call's audio settles in (a slow start) is no lost byte's doing.
    runs = noise_runs(ep.recording(wav), 1000.0, since_s=drops[0] - recording - 0.2)
    assert len(runs) <= len(losses) and all(ms <= 200 for ms in runs), f"noise runs {runs} ms (seed {seed})"

    def realigned() -> int:
        return int(trunked.status()["trunk"]["modems"][0]["realignments"]) - before

    deadline = time.monotonic() + 10  # the daemon asks the agent every 2 s
    while realigned() < len(losses) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert realigned() == len(losses)  # all odd: each loss found and counted, none imagined
    hang_up_trunk_call(ep, sim, call)
