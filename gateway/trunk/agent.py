"""The trunk agent: a pjsua2 user agent registered to Lifeline's Kamailio that carries calls over modems.

Runs in its own process (`python -m gateway.trunk.agent`), supervised by the daemon: a crash in
native code must not take the control plane down. asyncio runs on the main thread and pumps
pjsua2 (no pjsua2 worker threads, so SIP callbacks run on this thread inside the pump); only the
media callbacks run on pjsua2's clock thread, and they only copy bytes (see bridge.py).

Outbound: Kamailio's route[TRUNK] sends an INVITE whose Request-URI user is the dialled number →
dial plan and policy → modem pool → ATD → 183 with the network's ringback and announcements as
early media where the modem family sends them (else 180) → 200, or 486/480/503. Inbound: RING +
caller ID → the ring group is called in parallel through Kamailio, the caller's number in the From
display name and P-Asserted-Identity; the first to answer gets the call (ATA). DTMF both ways, hang-up both ways.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import functools
import itertools
import json
import os
import re
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pjsua2 as pj
import structlog
from aiohttp import web

from gateway import config as config_mod
from gateway import logs
from gateway.cdr import trunkinfo
from gateway.config import TrunkConfig, TrunkModemConfig
from gateway.trunk.bridge import ModemBridge
from gateway.trunk.call import CallEvent, CallState, EndReason
from gateway.trunk.dialplan import COUNTRIES, Policy, Reach, decide
from gateway.trunk.driver import LinkState, Modem, ModemSettings, Timeouts
from gateway.trunk.errors import TrunkError
from gateway.trunk.pool import ModemPool, NoModemError
from gateway.trunk.ports import ByIdFinder, PortFinder, SysfsFinder
from gateway.trunk.profiles import Family, configured
from gateway.trunk.usbreset import SysfsUsbReset

log = structlog.get_logger("trunk.agent")

# What a caller hears when the mobile/analog side ends a call before it was answered.
SIP_FOR_END = {
    EndReason.BUSY: (486, "Busy Here"),
    EndReason.NO_ANSWER: (480, "No Answer"),
    EndReason.REJECTED: (486, "Busy Here"),
    EndReason.UNREACHABLE: (503, "Mobile Network Unreachable"),
    EndReason.NORMAL: (480, "Temporarily Unavailable"),
    EndReason.MISSED: (487, "Request Terminated"),
    EndReason.LINE_LOST: (503, "Trunk Line Lost"),  # the modem went away or was reset under the call
    EndReason.LOCAL: (480, "Temporarily Unavailable"),  # we hung up first: _end gives its own answer
}


@dataclass(frozen=True)
class AgentSecrets:
    """What the daemon hands the agent on stdin (never on the command line or on disk)."""

    sip_host: str
    sip_port: int
    auth_user: str
    realm: str
    ha1: str
    control_socket: str


def read_pin(modem: TrunkModemConfig) -> str | None:
    """The SIM PIN from its file or environment variable; TrunkError naming the key if unreadable."""
    if modem.sim_pin_file is not None:
        try:
            pin = modem.sim_pin_file.read_text().strip()
        except OSError as err:
            raise TrunkError(f"trunk.modems[{modem.name}].sim_pin_file: {err.strerror}") from err
    elif modem.sim_pin_env is not None:
        pin = os.environ.get(modem.sim_pin_env, "").strip()
        if not pin:
            raise TrunkError(f"trunk.modems[{modem.name}].sim_pin_env: ${modem.sim_pin_env} is not set")
    else:
        return None
    if not re.fullmatch(r"[0-9]{4,8}", pin):
        raise TrunkError(f"trunk.modems[{modem.name}]: the SIM PIN must be 4 to 8 digits")  # not echoed
    return pin


def policy_from(config: TrunkConfig) -> Policy:
    """The dial-plan policy the config describes."""
    return Policy(
        country=COUNTRIES[config.country],
        extra_emergency=config.emergency_numbers,
        blocked=config.blocked_prefixes,
        allow_premium=config.allow_premium,
        default_reach=Reach[config.default_reach.upper()],
        reach={ext: Reach[level.upper()] for ext, level in config.reach.items()},
        daily_minutes=config.daily_minutes,
    )


class MinutesLedger:
    """Trunk minutes used today (non-emergency), persisted so a restart does not reset the cap."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.day = dt.date.today().isoformat()
        self.seconds = 0.0
        with contextlib.suppress(OSError, ValueError, KeyError):
            data = json.loads(path.read_text())
            if data["day"] == self.day:
                self.seconds = float(data["seconds"])

    def minutes_today(self) -> float:
        """Minutes used today."""
        self._roll()
        return self.seconds / 60

    def add(self, seconds: float) -> None:
        """Count a finished call."""
        self._roll()
        self.seconds += seconds
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"day": self.day, "seconds": self.seconds}))
        tmp.replace(self.path)

    def _roll(self) -> None:
        today = dt.date.today().isoformat()
        if today != self.day:
            self.day, self.seconds = today, 0.0


class Leg(pj.Call):  # type: ignore[misc]
    """One SIP call of the agent; forwards its callbacks to the agent (on the pump's thread)."""

    def __init__(self, agent: TrunkAgent, account: Any, call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(account, call_id)
        self.agent = agent
        self.trunk_call: TrunkCall | None = None
        self.state = "NULL"
        self.answered = False

    def onCallState(self, prm: Any) -> None:  # noqa: N802 - pjsua2 callback name
        """Forward the state change."""
        info = self.getInfo()
        self.state = str(info.stateText)
        self.agent.on_leg_state(self, info)

    def onCallMediaState(self, prm: Any) -> None:  # noqa: N802
        """Connect audio once the call's media is active."""
        self.agent.on_leg_media(self)

    def onDtmfDigit(self, prm: Any) -> None:  # noqa: N802
        """A digit from the phone (RFC 4733 or SIP INFO)."""
        self.agent.on_leg_dtmf(self, str(prm.digit))

    def onCallTransferRequest(self, prm: Any) -> None:  # noqa: N802
        """The phone transfers the trunk call (blind, REFER): the new leg is ours to follow."""
        self.agent.on_transfer(self, prm)


class Account(pj.Account):  # type: ignore[misc]
    """The agent's registration at Kamailio."""

    def __init__(self, agent: TrunkAgent) -> None:
        super().__init__()
        self.agent = agent
        self.reg_code = 0

    def onRegState(self, prm: Any) -> None:  # noqa: N802
        """Remember the registration's status."""
        self.reg_code = int(prm.code)
        log.info("registration", code=self.reg_code, reason=str(prm.reason))

    def onIncomingCall(self, prm: Any) -> None:  # noqa: N802
        """An INVITE from Kamailio: a phone dialled an external number."""
        self.agent.on_invite(Leg(self.agent, self, prm.callId), str(prm.rdata.wholeMsg))


@dataclass
class TrunkCall:
    """One call through a modem, with its SIP side."""

    id: int
    outgoing: bool
    slot: Slot
    number: str
    extension: str = ""
    emergency: bool = False
    leg: Leg | None = None  # the SIP leg carrying the audio
    ringing: list[Leg] = field(default_factory=list)  # inbound: ring-group legs not yet answered
    started: float = field(default_factory=time.monotonic)
    active_at: float | None = None
    ended: bool = False
    ring_task: asyncio.Task[None] | None = None
    transfer: Leg | None = None  # the leg a blind transfer is setting up
    uid: str = field(default_factory=lambda: uuid.uuid4().hex)  # joins the ring-group legs' records
    early: bool = False  # outbound: 183 sent, the phone hears the modem's audio before the answer


class Slot:
    """A modem in the pool: driver, audio bridge, and its current call."""

    def __init__(self, name: str, modem: Modem, bridge: ModemBridge) -> None:
        self.name = name
        self.modem = modem
        self.bridge = bridge
        self.call: TrunkCall | None = None
        self.seconds_today = 0.0

    @property
    def link(self) -> LinkState:
        """The modem's link state."""
        return self.modem.state

    @property
    def busy(self) -> bool:
        """Whether a call uses this modem."""
        return self.call is not None or self.modem.tracker.state is not CallState.IDLE

    @property
    def emergency_call(self) -> bool:
        """Whether that call is an emergency call."""
        return self.call is not None and self.call.emergency


def _epoch(when: dt.datetime | None) -> float | None:
    return when.timestamp() if when is not None else None


def _request_user(message: str) -> str:
    first = message.split("\r\n", 1)[0]
    found = re.match(r"INVITE\s+sips?:([^@;>\s]+)@", first)
    return found.group(1) if found else ""


def _uri_user(uri: str) -> str:
    found = re.search(r"sips?:([^@;>\s]+)@", uri)
    return found.group(1) if found else ""


class TrunkAgent:
    """The agent process: pjsua2, the modems, the policy, and a small control API."""

    def __init__(self, config: TrunkConfig, secrets: AgentSecrets, data_dir: Path, timeouts: Timeouts) -> None:
        self.config = config
        self.secrets = secrets
        self.policy = policy_from(config)
        self.ledger = MinutesLedger(data_dir / "trunk-minutes.json")
        self.timeouts = timeouts
        self.slots: list[Slot] = []
        self.pool = ModemPool([])
        self.calls: dict[int, TrunkCall] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.sms_inbox: list[dict[str, Any]] = []
        self.link_events: list[dict[str, Any]] = []  # modems leaving and reaching READY, for the daemon's events
        self.legs: set[Leg] = set()  # pjsua2 destroys a call whose Python object is collected
        self.ep: Any = None
        self.account: Account | None = None
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("agent task failed", error=repr(task.exception()))

    def _start_pjsua(self) -> None:
        ep = pj.Endpoint()
        ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.userAgent = "Lifeline trunk agent"
        cfg.logConfig.level = 1
        cfg.logConfig.consoleLevel = 1
        cfg.medConfig.noVad = True
        # 16 kHz when a modem delivers it, so its audio is not squeezed through 8 kHz; the
        # conference bridge resamples the 8 kHz ports (other modems, narrowband calls).
        cfg.medConfig.clockRate = 16000 if any(m.wideband for m in self.config.modems) else 8000
        cfg.medConfig.audioFramePtime = self.config.audio_ptime_ms
        cfg.medConfig.ecTailLen = 0  # GSM modules cancel echo themselves; analog lines get none anyway
        ep.libInit(cfg)
        tcfg = pj.TransportConfig()
        tcfg.port = 0
        tcfg.boundAddress = "127.0.0.1"  # loopback only: Kamailio is the agent's only peer
        ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        ep.audDevManager().setNullDev()  # the conference bridge's clock
        ep.libStart()
        self.ep = ep
        s = self.secrets
        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:{s.auth_user}@{s.realm}"
        acfg.regConfig.registrarUri = f"sip:{s.sip_host}:{s.sip_port}"
        acfg.regConfig.timeoutSec = 60
        acfg.regConfig.retryIntervalSec = 2
        # HA1 only: dataType 1 is PJSIP_CRED_DATA_DIGEST, so no clear password exists anywhere.
        acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", s.auth_user, 1, s.ha1))
        # Every request goes through Kamailio, whatever domain a transfer target names.
        acfg.sipConfig.proxies.append(f"sip:{s.sip_host}:{s.sip_port};lr")
        acfg.natConfig.sipOutboundUse = 0
        acfg.natConfig.contactRewriteUse = 0
        acfg.natConfig.viaRewriteUse = 0
        acfg.natConfig.sdpNatRewriteUse = 0
        acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
        account = Account(self)
        account.create(acfg)
        self.account = account

    def _build_modems(self) -> None:
        for index, mc in enumerate(self.config.modems):
            family = Family(mc.family)
            profile = configured(family, wideband=mc.wideband)  # the config checked the family can
            finder: PortFinder = (
                ByIdFinder(profile, mc.match, mc.by_id_dir) if mc.find_by == "by-id" else SysfsFinder(profile)
            )
            settings = ModemSettings(
                mc.name, read_pin(mc), self.timeouts, mic_gain=mc.mic_gain, speaker_gain=mc.speaker_gain
            )
            modem = Modem(profile, finder, settings, SysfsUsbReset())
            bridge = ModemBridge(f"modem{index}", ptime_ms=self.config.audio_ptime_ms, clock_rate=profile.sample_rate)
            slot = Slot(mc.name, modem, bridge)
            modem.call_listeners.append(functools.partial(self.on_modem_call, slot))
            modem.dtmf_listeners.append(functools.partial(self.on_modem_dtmf, slot))
            modem.sms_listeners.append(self.on_sms)
            modem.state_listeners.append(functools.partial(self.on_link, slot))
            modem.frame_sink = functools.partial(self.on_modem_frame, slot)
            self.slots.append(slot)
        self.pool = ModemPool(list(self.slots))

    async def run(self) -> None:
        """Run until SIGTERM: pump pjsua2, drive the modems, serve the control API."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        self._start_pjsua()
        self._build_modems()
        for slot in self.slots:
            await slot.modem.start()
        await self._start_api()
        log.info("trunk agent running", modems=[s.name for s in self.slots], extension=self.secrets.auth_user)
        try:
            while not self._stopping.is_set():
                self.ep.libHandleEvents(0)
                await asyncio.sleep(0.01)  # SIP needs no finer timing; media runs on pjsua2's own clock
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        for call in list(self.calls.values()):
            await self._end(call, "agent stopping")
        for slot in self.slots:
            await slot.modem.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        for slot in self.slots:
            slot.bridge.disconnect()
        if self.ep is not None:
            self.ep.hangupAllCalls()
            for _ in range(20):
                self.ep.libHandleEvents(10)
            if self.account is not None:
                self.account.shutdown()
            for slot in self.slots:
                slot.bridge.thisown = False  # destroyed with the library, not after it
            self.ep.libDestroy()
        log.info("trunk agent stopped")

    # ------------------------------------------------------------------ outbound: phone → modem

    def on_invite(self, leg: Leg, message: str) -> None:
        """A phone dialled an external number (pump thread)."""
        self.legs.add(leg)
        info = leg.getInfo()
        dialled = _request_user(message) or _uri_user(str(info.localUri))
        extension = _uri_user(str(info.remoteUri))
        if not dialled or dialled == self.secrets.auth_user:
            self._reject(leg, 404, "Not Found")
            return
        decision = decide(self.policy, extension, dialled, self.ledger.minutes_today())
        if not decision.allowed:
            self._reject(leg, decision.status, decision.reason)
            return
        try:
            choice = self.pool.pick(decision.emergency)
        except NoModemError as err:
            log.warning("no trunk line", number=decision.number, answer=str(err))
            self._reject(leg, err.status, err.reason)
            return
        slot = self.slots[self.slots.index(choice.member)]  # type: ignore[arg-type]
        call = TrunkCall(next(self._ids), True, slot, decision.number, extension, decision.emergency, leg)
        leg.trunk_call = call
        self.calls[call.id] = call
        log.info(
            "trunk call out",
            call=call.id,
            extension=extension,
            number=decision.number,
            modem=slot.name,
            emergency=decision.emergency,
            preempt=choice.preempt,
        )
        self._spawn(self._place(call, preempt=choice.preempt))

    async def _place(self, call: TrunkCall, preempt: bool) -> None:
        slot = call.slot
        if preempt and slot.call is not None:
            await self._end(slot.call, "preempted by an emergency call", sip=(503, "Call Preempted"))
        slot.call = call
        slot.bridge.reset()
        try:
            await slot.modem.dial(call.number)
        except (TrunkError, ValueError) as err:
            log.warning("dial failed", call=call.id, error=str(err))
            if not call.ended:
                await self._end(call, f"dial failed: {err}", sip=(503, "Trunk Dial Failed"))

    def _reject(self, leg: Leg, status: int, reason: str) -> None:
        prm = pj.CallOpParam(True)
        prm.statusCode = status
        prm.reason = reason
        with contextlib.suppress(pj.Error):
            leg.hangup(prm)

    # ------------------------------------------------------------------ modem events

    def on_modem_call(self, slot: Slot, event: CallEvent) -> None:
        """A call state change on a modem (asyncio loop)."""
        call = slot.call
        if event.state is CallState.INCOMING:
            if call is None:
                call = TrunkCall(next(self._ids), False, slot, event.number or "")
                slot.call = call
                self.calls[call.id] = call
                slot.bridge.reset()
                log.info("trunk call in", call=call.id, caller=event.number or "withheld", modem=slot.name)
                # Wait briefly for +CLIP after the first RING; a withheld number never comes.
                call.ring_task = asyncio.get_running_loop().create_task(self._ring_group_soon(call))
            elif event.number and not call.number:
                call.number = event.number
                if call.ring_task is not None and not call.ring_task.done():
                    call.ring_task.cancel()
                    self._ring_group(call)
            return
        if call is None:
            return
        if event.state is CallState.ALERTING and call.outgoing and call.leg is not None:
            if slot.modem.profile.early_audio:
                self._early_media(call)  # the network's ringback is in the modem's audio: let the phone hear it
            elif not call.early:
                self._answer_leg(call.leg, 180)
        elif event.state is CallState.ACTIVE:
            call.active_at = time.monotonic()
            if call.outgoing and call.leg is not None and not call.leg.answered:
                call.leg.answered = True
                self._answer_leg(call.leg, 200)
            if not (call.early and slot.bridge.connected is not None):
                self._connect_audio(call)  # after early media the bridge carries the call already: no gap
        elif event.state is CallState.ENDED:
            reason = event.reason or EndReason.NORMAL
            sip = SIP_FOR_END.get(reason, (480, "Temporarily Unavailable"))
            self._spawn(self._end(call, f"modem: {reason.value}", sip=sip, modem_done=True))

    def on_modem_frame(self, slot: Slot, frame: bytes) -> None:
        """The modem's clock ticks: its frame towards the phone, one frame from the phone back."""
        call = slot.call
        if call is not None and call.active_at is None and not call.early and call.outgoing:
            # Audio before the answer (only families with early audio send it): an announcement
            # while the call is set up, before any ringing. The phone hears it as early media.
            self._early_media(call)
        slot.modem.write_frame(slot.bridge.on_modem_frame(frame))

    def on_modem_dtmf(self, slot: Slot, digit: str) -> None:
        """A DTMF digit from the far end: RFC 4733 to the phone."""
        call = slot.call
        if call is not None and call.leg is not None and call.active_at is not None:
            with contextlib.suppress(pj.Error):
                call.leg.dialDtmf(digit)

    def on_link(self, slot: Slot, old: LinkState, new: LinkState, reason: str) -> None:
        """A modem's link changed: keep the changes an installer cares about (out of and back to READY)."""
        if LinkState.READY not in (old, new) and new is not LinkState.ABSENT:
            return
        problem = slot.modem.status.problem
        self.link_events.append(
            {"modem": slot.name, "old": old.value, "new": new.value, "reason": reason, "problem": problem,
             "at": time.time()}
        )  # fmt: skip
        del self.link_events[:-100]

    def on_sms(self, sms: Any) -> None:
        """An incoming SMS: logged, and kept for the daemon to forward."""
        log.info("sms received", sender=sms.sender, chars=len(sms.text))
        stamp = sms.time.isoformat() if sms.time else None
        self.sms_inbox.append({"sender": sms.sender, "time": stamp, "text": sms.text, "received": time.time()})
        del self.sms_inbox[:-100]

    # ------------------------------------------------------------------ inbound: modem → ring group

    async def _ring_group_soon(self, call: TrunkCall) -> None:
        await asyncio.sleep(1.0 if not call.number else 0)
        self._ring_group(call)

    def _ring_group(self, call: TrunkCall) -> None:
        if call.ended or call.ringing or call.leg is not None:
            return
        if self.account is None or not self.config.ring_group:
            log.warning("incoming trunk call but no ring group configured", call=call.id)
            return
        shown = call.number or "anonymous"
        s = self.secrets
        for member in self.config.ring_group:
            leg = Leg(self, self.account)
            leg.trunk_call = call
            prm = pj.CallOpParam(True)
            # The caller's number in From (Kamailio lets only the agent do this, and only with a
            # number), so phones show it and can call it back from their call history.
            caller = call.number if re.fullmatch(r"\+?[0-9]{3,20}", call.number) else "anonymous"
            prm.txOption.localUri = f'"{shown}" <sip:{caller}@{s.realm}>'
            prm.txOption.headers.append(self._trunk_header(call))
            if call.number:
                header = pj.SipHeader()
                header.hName = "P-Asserted-Identity"
                header.hValue = f"<tel:{call.number}>"
                prm.txOption.headers.append(header)
            try:
                leg.makeCall(f"sip:{member}@{s.sip_host}:{s.sip_port}", prm)
            except pj.Error as err:
                log.warning("cannot ring", member=member, error=str(err.info()))
                continue
            call.ringing.append(leg)
            self.legs.add(leg)
        log.info("ringing", call=call.id, members=list(self.config.ring_group), caller=shown)

    # ------------------------------------------------------------------ SIP leg events (pump thread)

    def on_leg_state(self, leg: Leg, info: Any) -> None:
        """A SIP leg changed state."""
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            # pjsua2's Call destructor hangs up its call id, which pjsua may by then have given to
            # a new call: the C++ object is left alone (a few hundred bytes), only Python lets go,
            # later, never inside its own callback.
            leg.thisown = False
            asyncio.get_running_loop().call_later(1.0, self.legs.discard, leg)
        call = leg.trunk_call
        if call is None:
            return
        if leg is call.transfer:
            self._transfer_progress(call, leg, info)
            return
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED and not call.outgoing and call.leg is None:
            call.leg = leg
            others = [other for other in call.ringing if other is not leg]
            call.ringing.clear()
            for other in others:
                other.trunk_call = None
                with contextlib.suppress(pj.Error):
                    other.hangup(pj.CallOpParam(True))
            log.info("answered", call=call.id, by=_uri_user(str(info.remoteUri)))
            self._spawn(self._answer_modem(call))
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            if leg in call.ringing:
                call.ringing.remove(leg)
                if not call.ringing and call.leg is None and not call.ended:
                    self._spawn(self._end(call, "nobody in the ring group answered"))
            elif leg is call.leg and not call.ended:
                call.leg = None
                if call.transfer is None:  # a transferring phone hangs up before the target answers
                    self._spawn(self._end(call, "phone hung up"))

    def on_leg_media(self, leg: Leg) -> None:
        """Media came up on a leg: bridge it if the modem side is up too (or sends early media)."""
        call = leg.trunk_call
        if call is not None and call.leg is leg and (call.active_at is not None or call.early):
            self._connect_audio(call)

    def on_leg_dtmf(self, leg: Leg, digit: str) -> None:
        """A digit from the phone: AT+VTS to the far end."""
        call = leg.trunk_call
        if call is not None and call.leg is leg and call.active_at is not None:
            self._spawn(self._dtmf(call, digit))

    def on_transfer(self, leg: Leg, prm: Any) -> None:
        """A blind transfer (REFER) of a trunk call to another extension: accept and follow the new leg."""
        call = leg.trunk_call
        if call is None or call.leg is not leg or call.active_at is None or call.transfer is not None:
            prm.statusCode = 603  # only an established trunk call can be transferred, once at a time
            return
        if self.account is None:
            prm.statusCode = 503
            return
        target = Leg(self, self.account)
        target.trunk_call = call
        self.legs.add(target)
        call.transfer = target
        prm.newCall = target
        log.info("transfer", call=call.id, to=str(prm.dstUri))

    def _transfer_progress(self, call: TrunkCall, leg: Leg, info: Any) -> None:
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            old, call.leg, call.transfer = call.leg, leg, None
            leg.answered = True
            if old is not None:
                old.trunk_call = None
                if old.state != "DISCONNECTED":
                    with contextlib.suppress(pj.Error):
                        old.hangup(pj.CallOpParam(True))
            log.info("transferred", call=call.id, to=_uri_user(str(info.remoteUri)))
            self._connect_audio(call)
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            # The target did not answer: the call stays with the phone that transferred it, if it is still there.
            call.transfer = None
            leg.trunk_call = None
            if call.leg is None or call.leg.state == "DISCONNECTED":
                self._spawn(self._end(call, "transfer target did not answer"))

    async def _dtmf(self, call: TrunkCall, digit: str) -> None:
        with contextlib.suppress(TrunkError, ValueError):
            await call.slot.modem.send_dtmf(digit)

    async def _answer_modem(self, call: TrunkCall) -> None:
        try:
            await call.slot.modem.answer()
        except TrunkError as err:
            log.warning("could not answer the modem", call=call.id, error=str(err))
            await self._end(call, "the caller was gone")

    def _answer_leg(self, leg: Leg, code: int) -> None:
        prm = pj.CallOpParam(True)
        prm.statusCode = code
        if code >= 200 and leg.trunk_call is not None:
            prm.txOption.headers.append(self._trunk_header(leg.trunk_call))  # for the call record
        with contextlib.suppress(pj.Error):
            leg.answer(prm)

    def _trunk_header(self, call: TrunkCall) -> Any:
        """X-Lifeline-Trunk: which modem, SIM and network carried this call (Kamailio puts it in the record)."""
        status = call.slot.modem.status
        registration = status.eps if status.eps is not None and status.eps.stat.registered else status.cs
        family = call.slot.modem.profile.family
        access = "analog" if family is Family.V253 else None
        if access is None and registration is not None and registration.act is not None:
            access = registration.act.name
        header = pj.SipHeader()
        header.hName = trunkinfo.HEADER
        header.hValue = trunkinfo.encode(
            {
                "call": call.uid,
                "modem": call.slot.name,
                "family": family.value,
                "imei": status.imei,
                "iccid": status.iccid,
                "operator": status.operator,
                "access": access,
                "number": call.number,
                "emergency": "1" if call.emergency else None,
            }
        )
        return header

    def _early_media(self, call: TrunkCall) -> None:
        """183 Session Progress with SDP to the phone, and the modem's audio bridged to it at once."""
        if call.early or call.ended or call.leg is None or call.leg.answered:
            return
        call.early = True
        self._answer_leg(call.leg, 183)  # pjsua2 puts its SDP answer in a 183: media starts now
        if call.slot.bridge.connected is None:  # else on_leg_media bridged it inside answer()
            self._connect_audio(call)  # (or does it later, if the media comes up after this)

    def _connect_audio(self, call: TrunkCall) -> None:
        leg = call.leg
        if leg is None:
            return
        try:
            info = leg.getInfo()
            for index, media in enumerate(info.media):
                if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                    call.slot.bridge.connect(leg.getAudioMedia(index))
                    log.info("audio bridged", call=call.id, modem=call.slot.name, early=call.active_at is None)
                    return
        except pj.Error as err:
            log.warning("cannot bridge audio", call=call.id, error=str(err.info()))

    async def _end(
        self,
        call: TrunkCall,
        why: str,
        sip: tuple[int, str] = (480, "Temporarily Unavailable"),
        modem_done: bool = False,
    ) -> None:
        """End both sides of a call once."""
        if call.ended:
            return
        call.ended = True
        slot = call.slot
        slot.bridge.disconnect()
        if call.ring_task is not None:
            call.ring_task.cancel()
        legs = [*call.ringing, *(leg for leg in (call.leg, call.transfer) if leg is not None)]
        call.ringing.clear()
        for leg in legs:
            leg.trunk_call = None
            if leg.state == "DISCONNECTED":
                continue
            prm = pj.CallOpParam(True)
            if not leg.answered and call.outgoing:
                prm.statusCode, prm.reason = sip
                prm.txOption.headers.append(self._trunk_header(call))
            with contextlib.suppress(pj.Error):
                leg.hangup(prm)
        if not modem_done:
            with contextlib.suppress(TrunkError):
                await slot.modem.hang_up()
        if call.active_at is not None:
            seconds = time.monotonic() - call.active_at
            slot.seconds_today += seconds
            if not call.emergency and call.outgoing:
                self.ledger.add(seconds)
        if slot.call is call:
            slot.call = None
        self.calls.pop(call.id, None)
        log.info("trunk call ended", call=call.id, why=why)

    # ------------------------------------------------------------------ control API (for the daemon)

    def status(self) -> dict[str, Any]:
        """What the daemon shows about the trunk."""
        return {
            "registered": self.account.reg_code if self.account else 0,
            "extension": self.secrets.auth_user,
            "minutes_today": round(self.ledger.minutes_today(), 1),
            "modems": [
                {
                    "name": s.name,
                    "family": s.modem.profile.family.value,
                    **s.modem.status.as_dict(),
                    "iccid": s.modem.status.iccid,
                    # The network's time now (NITZ, advanced since it was read): the call records' clock.
                    "network_now": _epoch(s.modem.network_time()),
                }
                for s in self.slots
            ],
            "calls": [
                {
                    "id": c.id,
                    "direction": "out" if c.outgoing else "in",
                    "modem": c.slot.name,
                    "number": c.number,
                    "extension": c.extension,
                    "emergency": c.emergency,
                    "active": c.active_at is not None,
                }
                for c in self.calls.values()
            ],
        }

    async def send_sms(self, numbers: list[str], text: str) -> dict[str, str]:
        """Send text to each number through the first ready modem; per-number result."""
        results: dict[str, str] = {}
        for number in numbers:
            ready = [s for s in self.slots if s.link is LinkState.READY]
            if not ready:
                results[number] = "no modem ready"
                continue
            try:
                await ready[0].modem.send_sms(number, text)
                results[number] = "sent"
            except TrunkError as err:
                results[number] = str(err)
        log.info("sms sent", results=results)
        return results

    async def _start_api(self) -> None:
        async def get_status(request: web.Request) -> web.Response:
            return web.json_response(self.status())

        async def post_sms(request: web.Request) -> web.Response:
            body = await request.json()
            numbers, text = body.get("numbers"), body.get("text")
            if not isinstance(numbers, list) or not isinstance(text, str) or not text:
                return web.json_response({"error": "numbers (list) and text (string) are required"}, status=400)
            return web.json_response({"results": await self.send_sms([str(n) for n in numbers], text)})

        async def get_inbox(request: web.Request) -> web.Response:
            since = float(request.query.get("since", "0"))
            return web.json_response([m for m in self.sms_inbox if m["received"] > since])

        app = web.Application()
        app.router.add_get("/status", get_status)
        app.router.add_post("/sms", post_sms)
        app.router.add_get("/sms/inbox", get_inbox)

        async def get_link_events(request: web.Request) -> web.Response:
            since = float(request.query.get("since", "0"))
            return web.json_response([e for e in self.link_events if e["at"] > since])

        app.router.add_get("/link-events", get_link_events)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        path = self.secrets.control_socket
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        await web.UnixSite(runner, path).start()
        os.chmod(path, 0o600)
        self._runner = runner


def main(argv: list[str] | None = None) -> int:
    """`python -m gateway.trunk.agent --config FILE`, secrets as one JSON line on stdin."""
    parser = argparse.ArgumentParser(prog="lifeline-trunk-agent")
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args(argv)
    config, _ = config_mod.load(args.config)
    logs.configure(config.log.level, config.log.format)
    secrets = AgentSecrets(**json.loads(sys.stdin.readline()))
    trunk = config.trunk
    timeouts = Timeouts(command=trunk.command_timeout_s, call=trunk.call_timeout_s, poll=trunk.poll_s)
    agent = TrunkAgent(config.trunk, secrets, config.data_dir, timeouts)
    try:
        asyncio.run(agent.run())
    except TrunkError as err:
        log.error("trunk agent cannot start", error=str(err))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
