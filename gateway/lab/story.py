"""`lifeline lab`'s story: a branch office loses its WAN, keeps calling on Lifeline, and gets it back.

Each step waits on what a user would notice (a phone's state, the mode, the sink's records) with a
deadline, never on a fixed sleep; the figures are measured from the same events.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pjsua2 as pj

from gateway.lab.phones import LAB_TONE_HZ, PhoneCall
from gateway.lab.story_lab import FAR_END_HZ, StoryLab
from gateway.lab.story_measure import finished_wav, probe_round_trip
from gateway.lab.story_model import Step, StepFailedError, Story
from gateway.trunk import tones

SCENARIOS = Path(__file__).resolve().parents[2] / "bench" / "scenarios"
CALLER = "+4915112345678"
PHONE_HZ = 2000.0  # what a calling phone plays while audio is checked
OTHER_HZ = float(LAB_TONE_HZ)  # what the called phone plays all along
FREQS = (PHONE_HZ, OTHER_HZ, FAR_END_HZ)


class Teller:
    """Runs the steps on a StoryLab, one after another, until one fails."""

    def __init__(self, lab: StoryLab, story: Story, stop: threading.Event) -> None:
        self.lab, self.story = lab, story
        # Set by the signal handlers: a KeyboardInterrupt raised inside a pjsua2 callback is swallowed by
        # SWIG, so the waits look at this too.
        self.stop = stop
        self.t_cut = self.t_restore = self.t_cut_wall = 0.0
        self.long_call: tuple[PhoneCall, PhoneCall] | None = None
        self.survival_calls = 0
        self.wav_n = 0

    def steps(self) -> list[tuple[str, Callable[[], str]]]:
        """(name, action) in story order; an action returns its detail or raises."""
        return [
            ("build the lab", self.build),
            ("phones register through the cloud", self.register),
            ("a call through the cloud", self.cloud_call),
            ("the WAN is cut", self.cut),
            ("first call after the cut", self.first_call),
            ("failover to SURVIVAL", self.failover),
            ("phone-to-phone call, audio both ways", self.local_call),
            ("trunk call on the modem", self.trunk_call),
            ("inbound call on the modem", self.inbound_call),
            ("call to 112 and its notification", self.emergency_call),
            ("an attacker guessing passwords is banned", self.attacker),
            ("the WAN returns: failback to NORMAL", self.restore),
            ("the call in progress survived failback", self.call_kept),
            ("call records delivered to the cloud", self.records),
        ]

    def run(self) -> bool:
        """Every step in order; False at the first that fails (the rest are left out)."""
        for name, action in self.steps():
            self.check_stop()
            step = Step(name, start_s=self.story.now())
            self.story.steps.append(step)
            self.story.event("step", name)
            try:
                step.detail = action()
                step.ok = True
            except (StepFailedError, AssertionError, subprocess.SubprocessError, OSError, RuntimeError) as err:
                step.ok, step.detail = False, str(err)[:500]
            step.end_s = self.story.now()
            self.story.event("ok" if step.ok else "fail", f"{name}: {step.detail}")
            if not step.ok:
                return False
        return True

    # --- helpers

    def check_stop(self) -> None:
        """KeyboardInterrupt once Ctrl-C or SIGTERM came, wherever the signal itself landed."""
        if self.stop.is_set():
            raise KeyboardInterrupt("stop requested")

    def wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Pump the phones until predicate() holds (or a stop is requested)."""
        assert self.lab.ep is not None

        def done() -> bool:
            self.check_stop()
            return predicate()

        try:
            self.lab.ep.wait_for(done, timeout, what)
        except AssertionError as err:
            raise StepFailedError(str(err)) from None

    def mode(self) -> str:
        """Lifeline's mode as its store last recorded it (read directly: the CLI takes a second under load)."""
        assert self.lab.branch is not None
        events = self.lab.branch.mode_events()
        return str(events[-1]["new"]) if events else "normal"

    def wait_mode(self, mode: str, timeout: float, since: float) -> float:
        """Pump the phones (their calls stay up) until Lifeline records a change to `mode` after `since` (UNIX
        time); when it changed, as Lifeline recorded it."""
        assert self.lab.branch is not None
        branch, found, polled = self.lab.branch, [0.0], [0.0]

        def reached() -> bool:
            if time.monotonic() - polled[0] < 0.05:
                return False
            polled[0] = time.monotonic()
            found[0] = next((e["ts"] for e in branch.mode_events() if e["new"] == mode and e["ts"] >= since), 0.0)
            return found[0] > 0

        self.wait(reached, timeout, f"mode {mode}")
        return float(found[0])

    def connect(self, caller: str, callee: str) -> tuple[PhoneCall, PhoneCall]:
        """caller dials callee; callee answers; both confirmed."""
        a, b = self.lab.phone(caller), self.lab.phone(callee)
        before = len(b.incoming)
        call = a.call(callee)
        self.wait(lambda: len(b.incoming) > before, 10, f"{callee} to ring")
        incoming = b.incoming[-1]
        incoming.answer_with(200)
        self.wait(lambda: call.state == "CONFIRMED" and incoming.state == "CONFIRMED", 10, "the answer")
        return call, incoming

    def rtp_flows(self, a: PhoneCall, b: PhoneCall) -> None:
        """More RTP arrives at both ends."""
        ra, rb = a.rtp_packets()[0], b.rtp_packets()[0]
        self.wait(lambda: a.rtp_packets()[0] > ra + 10 and b.rtp_packets()[0] > rb + 10, 10, "RTP both ways")

    def wav(self) -> Path:
        """A fresh WAV path in the work directory."""
        self.wav_n += 1
        return self.lab.workdir / f"heard-{self.wav_n}.wav"

    def heard(self, call: PhoneCall, wav: Path) -> str:
        """The frequency that dominates the last second `call` recorded (recording stops), or what was wrong."""
        call.stop_recording()
        pcm = finished_wav(self, wav)[0]
        found = tones.dominant(pcm[-16000:], FREQS)
        if found is None:
            return f"silence ({len(pcm) / 16000:.1f} s recorded, level {tones.rms(tones.from_bytes(pcm[-16000:])):.0f})"
        return f"{found:.0f} Hz"

    def hang_up(self, call: PhoneCall, other: PhoneCall | None = None) -> None:
        """Hang up and wait until both ends see it."""
        call.hang_up()
        self.wait(lambda: call.state == "DISCONNECTED" and (other is None or other.state == "DISCONNECTED"), 10,
                  "the hang-up")  # fmt: skip

    # --- the steps

    def build(self) -> str:
        """Namespaces, cloud, sink, modem, Lifeline and the phones' endpoint."""
        self.lab.start()
        a = self.lab.addr
        return f"{self.lab.where}; Lifeline on {a.branch_lan}, cloud on {a.cloud}"

    def register(self) -> str:
        """Each phone registers to the cloud through Lifeline; the cloud has every binding."""
        codes = {n: self.lab.phone(n).register() for n in ("1001", "1002", "1003", "1004")}
        if set(codes.values()) != {200}:
            raise StepFailedError(f"registrations answered {codes}")
        assert self.lab.branch is not None and self.lab.branch.cloud is not None
        at_cloud = self.lab.branch.cloud.bindings()
        missing = [n for n in codes if not any(aor.startswith(n) for aor in at_cloud)]
        if missing:
            raise StepFailedError(f"the cloud has no binding of {missing}")
        return f"{len(codes)} phones registered at the cloud, each copied by Lifeline"

    def cloud_call(self) -> str:
        """A call in NORMAL, relayed through the cloud, with RTP both ways."""
        call, incoming = self.connect("1001", "1002")
        self.rtp_flows(call, incoming)
        self.hang_up(call, incoming)
        return f"1001 → 1002 answered in mode {self.mode()}, RTP both ways"

    def cut(self) -> str:
        """nftables in the router drops everything between branch and cloud (on loopback: the cloud freezes)."""
        assert self.lab.branch is not None
        # A cut with the last call's BYE still at the cloud strands its answer: the caller's pjsua then keeps
        # the call for 32 s (timer F), and the phones of this one endpoint share pjsua's 4 calls.
        self.wait(self.lab.cloud_idle, 5, "the cloud to finish the requests in progress")
        self.t_cut_wall = time.time()
        self.lab.branch.topology.outage("all")
        self.t_cut = time.monotonic()
        if self.lab.loopback:
            return "the cloud goes silent: its Kamailio and API stopped (SIGSTOP), its call-record sink unanswering"
        return "nftables in the router drops everything between branch and cloud"

    def first_call(self) -> str:
        """The first call after the cut is answered (per-request fallback) and kept up."""
        call, incoming = self.connect("1004", "1003")
        answered = time.monotonic() - self.t_cut
        self.story.figures["cut_to_first_call_answered_s"] = round(answered, 3)
        self.long_call = (call, incoming)
        self.survival_calls += 1
        return f"1004 → 1003 answered {answered:.2f} s after the cut (mode {self.mode()}); kept up"

    def failover(self) -> str:
        """Lifeline records SURVIVAL."""
        took = self.wait_mode("survival", 30, self.t_cut_wall) - self.t_cut_wall
        self.story.figures["cut_to_survival_s"] = round(took, 3)
        return f"SURVIVAL {took:.2f} s after the cut"

    def local_call(self) -> str:
        """Phone to phone in SURVIVAL: each hears the other's tone."""
        call, incoming = self.connect("1001", "1002")
        self.survival_calls += 1
        self.wait(lambda: call.media_status == incoming.media_status == pj.PJSUA_CALL_MEDIA_ACTIVE, 10, "media")
        call.play(int(PHONE_HZ))
        wa, wb = self.wav(), self.wav()
        call.record_to(wa)
        incoming.record_to(wb)
        ra, rb = call.rtp_packets()[0], incoming.rtp_packets()[0]
        # 1.5 s of packets (50 a second) each way: the last second of each recording is all tone.
        self.wait(lambda: call.rtp_packets()[0] > ra + 75 and incoming.rtp_packets()[0] > rb + 75, 10, "audio")
        got_a, got_b = self.heard(call, wa), self.heard(incoming, wb)
        said = f"1001 heard {got_a} from 1002 (playing {OTHER_HZ:.0f} Hz), 1002 heard {got_b} (1001: {PHONE_HZ:.0f} Hz)"
        if (got_a, got_b) != (f"{OTHER_HZ:.0f} Hz", f"{PHONE_HZ:.0f} Hz"):
            raise StepFailedError(said)
        echo = probe_round_trip(self, call, incoming)  # the same call, 1002 now echoing what it hears
        self.story.figures.update(echo)
        self.hang_up(call, incoming)
        trip, n = echo["audio_round_trip_ms_phone_to_echoing_phone"], echo["audio_round_trip_samples"]
        return f"{said}; 1001's bursts came back from 1002 echoing in {trip:.0f} ms (median of {n})"

    def trunk_ready(self) -> None:
        """Wait until the trunk agent is registered and its modem ready and idle."""
        assert self.lab.branch is not None
        polled = [0.0]

        def ready() -> bool:
            if time.monotonic() - polled[0] < 0.2:
                return False
            polled[0] = time.monotonic()
            trunk = self.lab.branch.status().get("trunk") or {} if self.lab.branch else {}
            modem = (trunk.get("modems") or [{}])[0]
            return bool(
                trunk.get("registered") == 200 and modem.get("state") == "ready" and modem.get("call") == "idle"
            )

        self.wait(ready, 30, "the trunk to be ready")

    def sim_heard(self) -> int:
        """How many bytes of audio the modem's far end has heard."""
        assert self.lab.sim is not None
        sim = self.lab.sim
        return int(sim.call(lambda: len(sim.sim.far_end.heard)))

    def talk_over_modem(self, call: PhoneCall) -> tuple[str, float | None]:
        """(what the phone heard, the tone the modem's far end heard) with both sides playing their tone."""
        assert self.lab.sim is not None
        sim = self.lab.sim
        self.wait(lambda: call.media_status == pj.PJSUA_CALL_MEDIA_ACTIVE, 10, "media")
        call.play(int(PHONE_HZ))
        wav = self.wav()
        call.record_to(wav)
        before = self.sim_heard()
        self.wait(lambda: self.sim_heard() > before + 16000 * 2, 15, "two seconds of audio at the far end")
        return self.heard(call, wav), tones.dominant(sim.call(lambda: bytes(sim.sim.far_end.heard[-8000:])), FREQS)

    def trunk_call(self) -> str:
        """An outside number over the simulated modem, answered; its audio looked at."""
        self.trunk_ready()
        assert self.lab.sim is not None
        sim = self.lab.sim
        call = self.lab.phone("1001").call("0301234567")
        self.wait(lambda: call.state == "CONFIRMED", 20, "the far end to answer")
        self.survival_calls += 1
        got, far = self.talk_over_modem(call)
        dialled = sim.call(lambda: sim.sim.far_end.dialled[-1])
        self.hang_up(call)
        self.wait(lambda: sim.call(lambda: sim.sim.call is None), 10, "the modem call to end")
        audio_ok = (got, far) == (f"{FAR_END_HZ:.0f} Hz", PHONE_HZ)
        self.story.figures["trunk_audio_both_ways"] = audio_ok
        said = f"1001 → {dialled} answered over the modem; the phone heard {got} (far end: {FAR_END_HZ:.0f} Hz)"
        said += f", the far end {far} Hz" if far else ", the far end silence"
        if not audio_ok:
            raise StepFailedError(said)
        return said

    def inbound_call(self) -> str:
        """A call to the SIM rings the ring group; 1002 answers."""
        self.trunk_ready()
        assert self.lab.sim is not None
        sim = self.lab.sim
        alice, bob = self.lab.phone("1001"), self.lab.phone("1002")
        na, nb = len(alice.incoming), len(bob.incoming)
        sim.call(sim.sim.incoming_call, CALLER)
        self.wait(lambda: len(alice.incoming) > na and len(bob.incoming) > nb, 15, "the ring group to ring")
        ring = bob.incoming[-1]
        ring.answer_with(200)
        self.wait(lambda: ring.state == "CONFIRMED", 10, "1002's answer")
        self.survival_calls += 1
        shown = ring.remote_uri
        self.wait(lambda: sim.call(lambda: sim.sim.call is not None and sim.sim.call.stat == 0), 10, "ATA at the modem")
        self.hang_up(ring)
        self.wait(lambda: sim.call(lambda: sim.sim.call is None), 10, "the modem call to end")
        return f"{CALLER} rang 1001 and 1002; 1002 answered (shown as {shown})"

    def emergency_call(self) -> str:
        """112 goes out on the modem as an emergency call and the front desk is told."""
        self.trunk_ready()
        assert self.lab.sim is not None
        sim = self.lab.sim
        bob = self.lab.phone("1002")
        before, notes = sim.call(lambda: len(sim.sim.emergency_calls)), len(bob.messages)
        call = self.lab.phone("1001").call("112")
        self.wait(lambda: call.state == "CONFIRMED", 20, "the PSAP to answer")
        self.survival_calls += 1
        self.wait(lambda: len(bob.messages) > notes, 10, "the front desk's notice (a SIP MESSAGE to 1002)")
        got, far = self.talk_over_modem(call)  # the caller and the emergency service hear each other
        dialled = sim.call(lambda: list(sim.sim.emergency_calls))[before:]
        self.hang_up(call)
        self.wait(lambda: sim.call(lambda: sim.sim.call is None), 10, "the modem call to end")
        if dialled != ["112"]:
            raise StepFailedError(f"the modem dialled {dialled} as emergency calls")
        if (got, far) != (f"{FAR_END_HZ:.0f} Hz", PHONE_HZ):
            heard = f"{far:.0f} Hz" if far else "silence"
            raise StepFailedError(f"112 answered, but the caller heard {got} and the emergency service {heard}")
        text = bob.messages[-1][2].splitlines()[0][:120]
        return f"112 went out on the modem as an emergency call, audio both ways; 1002 was told: {text!r}"

    def attacker(self) -> str:
        """sipp guesses 1003's password from another LAN address until Lifeline bans it."""
        assert self.lab.branch is not None and self.lab.branch.lifeline is not None
        a, attacker = self.lab.addr, self.lab.attacker
        users = self.lab.workdir / "guesses.csv"
        users.write_text("SEQUENTIAL\n" + "".join(f"1003;[authentication username=1003 password=guess-{i}]\n"
                                                  for i in range(20)))  # fmt: skip
        log = self.lab.branch.lifeline.log_path
        banned = re.compile(rf"lifeline: banned {re.escape(attacker)} for (\d+)s")
        cmd = ["sipp", f"{a.branch_lan}:5060", "-sf", str(SCENARIOS / "register_wrong.xml"), "-inf", str(users),
               "-i", attacker, "-p", "0", "-m", "20", "-r", "20", "-l", "5", "-max_retrans", "1", "-timeout", "8s",
               "-nostdin"]  # fmt: skip
        started = time.monotonic()
        sipp = subprocess.Popen(cmd, cwd=self.lab.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self.wait(lambda: bool(banned.search(log.read_text(errors="replace"))), 15, "the ban in Lifeline's log")
        finally:  # sipp goes on guessing (unanswered now) until its timeout: not worth waiting for
            sipp.kill()
            sipp.wait(5)
        found = banned.search(log.read_text(errors="replace"))
        assert found is not None
        self.story.figures["attacker_banned"] = True
        self.story.figures["attack_to_ban_s"] = round(time.monotonic() - started, 3)
        return f"sipp guessed 1003's password from {attacker}: banned for {found.group(1)} s"

    def restore(self) -> str:
        """The WAN returns; Lifeline fails back after its hold-down."""
        assert self.lab.branch is not None
        restored = time.time()
        self.lab.branch.topology.restore()
        self.t_restore = time.monotonic()
        took = self.wait_mode("normal", 60, restored) - restored
        self.story.figures["restore_to_normal_s"] = round(took, 3)
        return f"NORMAL {took:.2f} s after the WAN returned (hold-down {self.lab.hold_down_s:g} s)"

    def call_kept(self) -> str:
        """The call set up at the cut still carries audio after failback and ends cleanly."""
        if self.long_call is None:
            raise StepFailedError("no call in progress")
        call, incoming = self.long_call
        if call.state != "CONFIRMED" or incoming.state != "CONFIRMED":
            self.story.figures["calls_dropped_at_failback"] = 1
            raise StepFailedError(f"the call dropped: {call.state} / {incoming.state}")
        self.rtp_flows(call, incoming)
        self.hang_up(call, incoming)
        self.story.figures["calls_dropped_at_failback"] = 0
        return "1004 ↔ 1003, set up at the cut, still had audio both ways in NORMAL; BYE reached the far end"

    def records(self) -> str:
        """Every call made in survival has its record at the cloud's sink."""
        assert self.lab.sink is not None
        sink = self.lab.sink
        want = self.survival_calls
        self.story.figures["survival_calls"] = want
        self.wait(lambda: len(sink.records()) >= want, 30, f"{want} records at the cloud's sink")
        got, took = len(sink.records()), max(sink.arrivals()) - self.t_restore  # to the last record's arrival
        figures = self.story.figures
        figures["records_delivered"] = got
        figures["restore_to_records_delivered_s"] = round(took, 3)
        # Few records, and the sender's retry backoff dominates: a figure of this run, not a throughput limit.
        figures["records_per_s_restore_to_last_delivered"] = round(got / took, 2) if took > 0 else None
        if got != want:
            raise StepFailedError(f"{got} records at the sink for {want} calls made in survival")
        kinds = sorted({f"{r['direction']}/{r['disposition']}" for r in sink.records()})
        return f"{got} records (one per call made in survival) at the cloud's sink: {', '.join(kinds)}"
