"""Real SIP phones for tests and the lab: pjsua2 accounts on one endpoint, driven by polling.

pjsua2 runs with no worker threads here: the caller pumps events with `wait_for`, so no pjsua2
callback ever runs on a thread Python does not expect (pjproject #3125).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pjsua2 as pj


class SipEndpoint:
    """The process-wide pjsua2 library, with a null sound device as the media clock."""

    def __init__(self, log_level: int = 1) -> None:
        self.ep = pj.Endpoint()
        self.ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.userAgent = "Lifeline test phone"
        cfg.logConfig.level = log_level
        cfg.logConfig.consoleLevel = log_level
        cfg.medConfig.noVad = True
        cfg.medConfig.clockRate = 8000
        self.ep.libInit(cfg)
        self.ep.audDevManager().setNullDev()
        self.ep.libStart()
        self.phones: list[Phone] = []
        self.all_calls: list[PhoneCall] = []

    def pump(self, ms: int = 10) -> None:
        """Let pjsua2 handle pending events for up to ms milliseconds."""
        self.ep.libHandleEvents(ms)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
        """Pump events until predicate() is true; AssertionError naming `what` on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump(20)
            if predicate():
                return
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")

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
        tcfg = pj.TransportConfig()
        tcfg.port = 0
        tcfg.boundAddress = host
        tid = self.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
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
        phone.create(acfg)
        self.phones.append(phone)
        return phone

    def reset(self, pump_ms: int = 200) -> None:
        """Hang up every call and remove every phone (between tests)."""
        self.ep.hangupAllCalls()
        self.pump(pump_ms)
        for phone in self.phones:
            phone.shutdown()
        self.phones.clear()

    def close(self) -> None:
        """Hang up everything and destroy the library."""
        self.ep.hangupAllCalls()
        self.pump(100)
        for phone in self.phones:
            phone.shutdown()
        self.phones.clear()
        # Call objects still referenced (say, by a failed test's traceback) must not run their
        # C++ destructor after libDestroy: it asserts on the stale call id.
        for call in self.all_calls:
            call.thisown = False
            if call._tone is not None:
                call._tone.thisown = False
        self.ep.libDestroy()


@dataclass
class CallRecord:
    """What one side of a call saw."""

    states: list[str] = field(default_factory=list)
    last_code: int = 0
    last_reason: str = ""
    media_status: list[int] = field(default_factory=list)


class PhoneCall(pj.Call):  # type: ignore[misc]
    """A call on a test phone; records its state changes."""

    def __init__(self, phone: Phone, call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(phone, call_id)
        self.phone = phone
        self.record = CallRecord()
        self._tone: Any = None
        phone.endpoint.all_calls.append(self)

    def onCallState(self, prm: Any) -> None:  # noqa: N802 - pjsua2 callback name
        """Record the new state and the last status code."""
        info = self.getInfo()
        self.record.states.append(info.stateText)
        self.record.last_code = int(info.lastStatusCode)
        self.record.last_reason = str(info.lastReason)
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self._tone = None  # freed while the library still runs

    def onCallMediaState(self, prm: Any) -> None:  # noqa: N802
        """Record the media status; start a tone once audio is active."""
        info = self.getInfo()
        for index, media in enumerate(info.media):
            if media.type == pj.PJMEDIA_TYPE_AUDIO:
                self.record.media_status.append(int(media.status))
                if media.status == pj.PJSUA_CALL_MEDIA_ACTIVE and self._tone is None:
                    # A tone keeps RTP flowing so the far end can count packets.
                    self._tone = pj.ToneGenerator()
                    self._tone.createToneGenerator(8000, 1)
                    desc = pj.ToneDesc()
                    desc.freq1, desc.freq2, desc.on_msec, desc.off_msec = 440, 0, 1000, 0
                    tones = pj.ToneDescVector()
                    tones.append(desc)
                    self._tone.play(tones, True)
                    self._tone.startTransmit(self.getAudioMedia(index))

    @property
    def state(self) -> str:
        """pjsua2's state text: CALLING, EARLY, CONNECTING, CONFIRMED, DISCONNECTED."""
        return self.record.states[-1] if self.record.states else "NULL"

    @property
    def media_status(self) -> int:
        """The audio media status (pj.PJSUA_CALL_MEDIA_*) last reported."""
        return self.record.media_status[-1] if self.record.media_status else pj.PJSUA_CALL_MEDIA_NONE

    def rtp_packets(self) -> tuple[int, int]:
        """(received, sent) RTP packets of the audio stream."""
        stat = self.getStreamStat(0)
        return int(stat.rtcp.rxStat.pkt), int(stat.rtcp.txStat.pkt)

    def answer_with(self, code: int = 200) -> None:
        """Answer (or reject) an incoming call."""
        prm = pj.CallOpParam(True)
        prm.statusCode = code
        self.answer(prm)

    def hold(self) -> None:
        """Put the call on hold (re-INVITE with sendonly)."""
        self.setHold(pj.CallOpParam(True))

    def unhold(self) -> None:
        """Take the call off hold (re-INVITE with sendrecv)."""
        prm = pj.CallOpParam(True)
        prm.opt.flag = pj.PJSUA_CALL_UNHOLD
        self.reinvite(prm)

    def hang_up(self) -> None:
        """Send BYE (or CANCEL before answer)."""
        self.hangup(pj.CallOpParam(True))


class Phone(pj.Account):  # type: ignore[misc]
    """A SIP phone: registers, places and receives calls."""

    def __init__(self, endpoint: SipEndpoint, user: str, domain: str, transport_id: int) -> None:
        super().__init__()
        self.endpoint = endpoint
        self.transport_id = transport_id
        self.user, self.domain = user, domain
        self.reg_codes: list[int] = []
        self.incoming: list[PhoneCall] = []
        self.calls: list[PhoneCall] = []

    def onRegState(self, prm: Any) -> None:  # noqa: N802
        """Record the registration's final status code."""
        self.reg_codes.append(int(prm.code))

    def onIncomingCall(self, prm: Any) -> None:  # noqa: N802
        """Keep the incoming call and let it ring (180)."""
        call = PhoneCall(self, prm.callId)
        self.incoming.append(call)
        call.answer_with(180)

    def register(self, timeout: float = 10.0) -> int:
        """Register and wait for the final answer; returns its status code."""
        before = len(self.reg_codes)
        self.setRegistration(True)
        self.endpoint.wait_for(lambda: len(self.reg_codes) > before, timeout, f"{self.user} to register")
        return self.reg_codes[-1]

    def call(self, number: str) -> PhoneCall:
        """Dial a number in this phone's domain."""
        call = PhoneCall(self)
        call.makeCall(f"sip:{number}@{self.domain}", pj.CallOpParam(True))
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
        """Forget this phone's calls and account."""
        self.incoming.clear()
        self.calls.clear()
        super().shutdown()
        self.endpoint.ep.transportClose(self.transport_id)
