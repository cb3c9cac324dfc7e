"""Real SIP phones for tests and the lab: pjsua2 accounts on one endpoint, driven by polling.

pjsua2 runs with no worker threads here: the caller pumps events with `wait_for`, so no pjsua2
callback ever runs on a thread Python does not expect (pjproject #3125). Its lifecycle rules (calls
touched only until DISCONNECTED, ports out of the conference before the library goes) are kept by
gateway.pjsafe; nothing here holds a raw pjsua2 call.
"""

from __future__ import annotations

import functools
import gc
import re
import time
import wave
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pjsua2 as pj

from gateway.errors import UserAgentError
from gateway.pjsafe import SafeCall, UaAccount, UserAgent
from gateway.trunk.tones import read_wav

LAB_TONE_HZ = 440  # every lab phone plays it once its audio is up, so the far end can count packets


class SipEndpoint:
    """The process-wide pjsua2 library, with a null sound device as the media clock."""

    def __init__(self, log_level: int = 1) -> None:
        self.ua = UserAgent("Lifeline test phone", log_level=log_level, clock_rate=8000)
        self.phones: list[Phone] = []

    def pump(self, ms: int = 10) -> None:
        """Let pjsua2 handle pending events for up to ms milliseconds."""
        self.ua.pump(ms)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
        """Pump events until predicate() is true; AssertionError naming `what` on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump(20)
            if predicate():
                return
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")

    def recording(self, wav: Path, timeout: float = 5.0) -> bytes:
        """The 8 kHz PCM of a stopped recording once complete: pjsua2 (2.14+) ends a recorder on its own clock."""
        found: list[tuple[bytes, int]] = []

        def complete() -> bool:
            try:
                found.append(read_wav(wav))
            except (wave.Error, EOFError, OSError):
                return False
            return bool(found[-1][0])

        self.wait_for(complete, timeout, f"pjsua2 to complete the recording {wav.name}")
        pcm, rate = found[-1]
        assert rate == 8000, f"{wav.name}: recorded at {rate} Hz, not 8 kHz"  # a wrong rate is no reason to wait
        return pcm

    def phone(
        self,
        user: str,
        password: str,
        *,
        domain: str,
        registrar: str,
        proxy: str | None = None,
        auth_user: str | None = None,
        host: str = "127.0.0.1",
    ) -> Phone:
        """A phone with its own UDP transport, not yet registered."""
        tid = self.ua.udp_transport(host)
        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:{user}@{domain}"
        acfg.regConfig.registrarUri = registrar
        acfg.regConfig.registerOnAdd = False
        acfg.regConfig.retryIntervalSec = 0
        if proxy:
            acfg.sipConfig.proxies.append(proxy)
        acfg.sipConfig.transportId = tid
        acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", auth_user or user, 0, password))
        acfg.natConfig.sipOutboundUse = 0
        acfg.natConfig.contactRewriteUse = 0
        acfg.natConfig.viaRewriteUse = 0
        acfg.natConfig.sdpNatRewriteUse = 0
        acfg.mediaConfig.transportConfig.boundAddress = host
        acfg.mediaConfig.transportConfig.publicAddress = host
        phone = Phone(self, user, domain, tid)
        self.ua.add_account(phone, acfg)
        self.phones.append(phone)
        return phone

    def hang_up_all(self, pump_ms: int = 200) -> None:
        """Hang up every call and let the BYEs and CANCELs go out."""
        self.ua.hang_up_all()
        self.pump(pump_ms)

    def reset(self, pump_ms: int = 200) -> None:
        """Hang up every call and remove every phone (between tests)."""
        self.hang_up_all(pump_ms)
        for phone in list(self.phones):
            phone.shutdown()
        # A test's leftovers in reference cycles are finalized here, on the owner thread, rather
        # than by a collection that may run on pjsua2's media clock thread.
        gc.collect()

    def close(self) -> None:
        """Hang up everything and destroy the library (see gateway.pjsafe for the order)."""
        self.phones.clear()
        self.ua.close()


@dataclass
class CallRecord:
    """What one side of a call saw."""

    states: list[str] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)  # the status code at each state change (183 while early, 200…)
    last_code: int = 0
    last_reason: str = ""
    media_status: list[int] = field(default_factory=list)
    reinvite_refusals: list[tuple[int, int | None]] = field(default_factory=list)  # (code, Retry-After s)


def tone_generator(freq: int) -> Any:
    """A pjsua2 tone generator playing freq continuously at 8 kHz (adopt or attach it)."""
    tone = pj.ToneGenerator()
    tone.createToneGenerator(8000, 1)
    desc = pj.ToneDesc()
    desc.freq1, desc.freq2, desc.on_msec, desc.off_msec = freq, 0, 1000, 0
    tones = pj.ToneDescVector()
    tones.append(desc)
    tone.play(tones, True)
    return tone


class PhoneCall(SafeCall):
    """A call on a test phone: records its state changes and digits, plays a tone, can record."""

    def __init__(self, phone: Phone, call_id: int = pj.PJSUA_INVALID_ID) -> None:
        self.phone = phone
        self.record = CallRecord()
        self.digits: list[str] = []
        self.tone_hz = LAB_TONE_HZ
        self._tone: Any = None
        self._recorder: Any = None
        super().__init__(phone, call_id)

    def on_state(self, info: Any) -> None:
        """Record the new state and the last status code."""
        self.record.states.append(self.state)
        self.record.codes.append(self.last_code)
        self.record.last_code = self.last_code
        self.record.last_reason = self.last_reason

    def on_media(self) -> None:
        """Record the media status; keep the tone playing into the call's current stream."""
        for media in self.last_media():
            if media.type == pj.PJMEDIA_TYPE_AUDIO:
                self.record.media_status.append(int(media.status))
        if not self.has_active_audio():
            return
        if self._tone is None:
            self._tone = self.attach(tone_generator(self.tone_hz))
        if not self.linked(self._tone):
            self.link(self._tone, from_call=False)  # a re-INVITE's new stream gets the tone too
        if self._recorder is not None and not self.linked(self._recorder):
            self.link(self._recorder, to_call=False)

    def on_dtmf(self, digit: str) -> None:
        """Keep a received digit."""
        self.digits.append(digit)

    def on_reinvite_answer(self, code: int, message: str) -> None:
        """Keep a refused re-INVITE: (code, seconds its Retry-After asks for, None if it asks nothing)."""
        found = re.search(r"^Retry-After:\s*(\d+)", message, re.IGNORECASE | re.MULTILINE)
        self.record.reinvite_refusals.append((code, int(found.group(1)) if found else None))

    def resume(self, attempts: int = 3) -> None:
        """Take the call off hold as a desk phone does: a re-INVITE refused as crossing another is sent again.

        A proxy with several workers may pass our re-INVITE on before the ACK of the one before it; the
        far end then refuses it (pjsip: 500 with Retry-After, RFC 3261 14.2; or 491 on glare), and RFC
        3261 14.1 asks the sender to try again later. pjsua leaves that to the application.
        """
        for _ in range(attempts):
            refused = len(self.record.reinvite_refusals)
            self.unhold()
            self.phone.endpoint.wait_for(
                functools.partial(self._resumed_or_refused, refused), what=f"{self.phone.user}'s resume to be answered"
            )
            if self.media_status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                return
            code, retry_after = self.record.reinvite_refusals[-1]
            if code not in (491, 500):
                raise AssertionError(f"{self.phone.user}'s resume was refused with {code}")
            until = time.monotonic() + min(retry_after if retry_after is not None else 2, 4)
            while time.monotonic() < until:
                self.phone.endpoint.pump(20)
        raise AssertionError(f"{self.phone.user}'s resume was refused {attempts} times")

    def _resumed_or_refused(self, refused_before: int) -> bool:
        return self.media_status == pj.PJSUA_CALL_MEDIA_ACTIVE or len(self.record.reinvite_refusals) > refused_before

    def last_media(self) -> list[Any]:
        """pjsua2's CallMediaInfo list as last seen."""
        info = self.info() if not self.gone else self.last_info
        return list(info.media) if info is not None else []

    @property
    def media_status(self) -> int:
        """The audio media status (pj.PJSUA_CALL_MEDIA_*) last reported."""
        return self.record.media_status[-1] if self.record.media_status else pj.PJSUA_CALL_MEDIA_NONE

    @property
    def call_id_string(self) -> str:
        """The SIP Call-ID (readable after the call too)."""
        return str(self.last_info.callIdString) if self.last_info is not None else ""

    @property
    def remote_uri(self) -> str:
        """The far end's URI as the dialog shows it (readable after the call too)."""
        return str(self.last_info.remoteUri) if self.last_info is not None else ""

    def rtp_packets(self) -> tuple[int, int]:
        """(received, sent) RTP packets of the audio stream; CallGoneError once the call ended."""
        stat = self.stream_stat(0)
        return int(stat.rtcp.rxStat.pkt), int(stat.rtcp.txStat.pkt)

    def answer_with(self, code: int = 200) -> None:
        """Answer (or reject) an incoming call."""
        self.answer(code)

    def hang_up(self) -> None:
        """Send BYE (or CANCEL before answer); nothing once the call has ended."""
        self.hangup()

    def play(self, freq: int) -> None:
        """Play freq instead of the lab tone from now on."""
        self.tone_hz = freq
        if self._tone is not None:
            self.detach(self._tone)
        self._tone = self.attach(tone_generator(freq))
        self.link(self._tone, from_call=False)

    def record_to(self, wav: Path) -> None:
        """Record what the phone hears into wav from now on (stop_recording() completes the file)."""
        recorder = pj.AudioMediaRecorder()
        recorder.createRecorder(str(wav))
        self._recorder = self.attach(recorder)
        self.link(recorder, to_call=False)

    def stop_recording(self) -> None:
        """Close the WAV file (pjsua2 writes its header when the recorder goes)."""
        recorder, self._recorder = self._recorder, None
        if recorder is not None:
            self.detach(recorder)

    def loop_back(self) -> None:
        """Send back what this phone hears (an echo at its end, as pjsua's --auto-loop does); its tone stops."""
        self.stop_media()
        with self._op("loop back") as call:
            index, slot = self._audio()
            if slot < 0:
                raise UserAgentError("loop back: the call has no active audio")
            media = call.getAudioMedia(index)
            media.startTransmit(media)

    def probe_echo(self, freq: int, on_ms: int, off_ms: int, wav: Path) -> None:
        """Send bursts of freq and record them mixed with what comes back into wav (stop_recording() ends it).

        One recording holds both the burst sent and its echo, on the bridge's one clock: their onsets
        are the round trip, whatever delay starting the recorder or the generator had.
        """
        self.stop_media()
        recorder = pj.AudioMediaRecorder()
        recorder.createRecorder(str(wav))
        self._recorder = self.attach(recorder)
        self.link(recorder, to_call=False)
        tone = pj.ToneGenerator()
        tone.createToneGenerator(8000, 1)
        self._tone = self.attach(tone)
        tone.startTransmit(recorder)
        self.link(tone, from_call=False)
        desc = pj.ToneDesc()
        desc.freq1, desc.freq2, desc.on_msec, desc.off_msec = freq, 0, on_ms, off_ms
        bursts = pj.ToneDescVector()
        bursts.append(desc)
        tone.play(bursts, True)

    def stop_media(self) -> None:
        """Stop the tone and the recording now (both go with the call anyway)."""
        self.stop_recording()
        tone, self._tone = self._tone, None
        if tone is not None:
            self.detach(tone)


class Phone(UaAccount):
    """A SIP phone: registers, places and receives calls."""

    def __init__(self, endpoint: SipEndpoint, user: str, domain: str, transport_id: int) -> None:
        super().__init__(endpoint.ua)
        self.endpoint = endpoint
        self.transport_id = transport_id
        self.user, self.domain = user, domain
        self.reg_codes: list[int] = []
        self.incoming: list[PhoneCall] = []
        self.calls: list[PhoneCall] = []
        self.messages: list[tuple[float, str, str]] = []  # SIP MESSAGEs received: (time.monotonic(), from, text)

    def on_registration(self, code: int, reason: str) -> None:
        """Record the registration's final status code."""
        self.reg_codes.append(code)

    def on_message(self, sender: str, text: str, content_type: str) -> None:
        """Keep a SIP MESSAGE, with when it arrived."""
        self.messages.append((time.monotonic(), sender, text))

    def on_incoming_call(self, call_id: int, message: str, source: str) -> None:
        """Keep the incoming call and let it ring (180)."""
        call = PhoneCall(self, call_id)
        self.incoming.append(call)
        call.answer_with(180)

    def register(self, timeout: float = 10.0) -> int:
        """Register and wait for the final answer; returns its status code."""
        before = len(self.reg_codes)
        self.set_registration(True)
        self.endpoint.wait_for(lambda: len(self.reg_codes) > before, timeout, f"{self.user} to register")
        return self.reg_codes[-1]

    def call(self, number: str, headers: Iterable[tuple[str, str]] = (), local_uri: str | None = None) -> PhoneCall:
        """Dial a number in this phone's domain, with extra SIP headers and another From if given."""
        prm = pj.CallOpParam(True)
        if local_uri is not None:
            prm.txOption.localUri = local_uri
        for name, value in headers:
            header = pj.SipHeader()
            header.hName, header.hValue = name, value
            prm.txOption.headers.append(header)
        call = PhoneCall(self)
        call.make_call(f"sip:{number}@{self.domain}", prm=prm)
        self.calls.append(call)
        return call

    def ringing_call(self, timeout: float = 10.0) -> PhoneCall:
        """Wait for an incoming call and return it."""
        self.endpoint.wait_for(lambda: bool(self.incoming), timeout, f"a call to ring on {self.user}")
        return self.incoming[-1]

    def registered(self) -> bool:
        """Whether the last registration succeeded."""
        return bool(self.reg_codes) and self.reg_codes[-1] // 100 == 2

    def shutdown(self) -> None:
        """Hang up this phone's calls, delete its account and close its transport."""
        if self not in self.endpoint.phones:
            return
        self.endpoint.phones.remove(self)
        self.incoming.clear()
        self.calls.clear()
        self.endpoint.ua.remove_account(self)
        self.endpoint.ua.close_transport(self.transport_id)


def talk(
    ep: SipEndpoint,
    caller: Phone,
    callee: Phone,
    number: str = "1002",
    *,
    rtp: bool = False,
    caller_hangs_up: bool = False,
) -> None:
    """caller dials number, callee answers (RTP flows both ways first, if rtp); one hangs up and the other sees it."""
    before = len(callee.incoming)
    call = caller.call(number)
    ep.wait_for(lambda: len(callee.incoming) > before or call.state == "DISCONNECTED", 15, "the callee to ring")
    assert len(callee.incoming) > before, f"the call failed: {call.record.last_code} {call.record.last_reason}"
    incoming = callee.incoming[-1]
    incoming.answer_with(200)
    ep.wait_for(lambda: call.state == "CONFIRMED" and incoming.state == "CONFIRMED", 15, "the call answered")
    if rtp:
        sa, sb = call.rtp_packets()[0], incoming.rtp_packets()[0]
        ep.wait_for(
            lambda: call.rtp_packets()[0] > sa + 10 and incoming.rtp_packets()[0] > sb + 10, 10, "RTP both ways"
        )
    ender, other = (call, incoming) if caller_hangs_up else (incoming, call)
    ender.hang_up()
    ep.wait_for(lambda: other.state == "DISCONNECTED", 10, "the other side to see the hang-up")
