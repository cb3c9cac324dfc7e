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
from gateway.config import DrillConfig, EmergencyConfig, TrunkConfig, TrunkModemConfig
from gateway.errors import UserAgentError
from gateway.fsmode import write_private
from gateway.pjsafe import SafeCall, UaAccount, UserAgent
from gateway.sip.stamp import stamped_call
from gateway.trunk.alerting import EmergencyRinger
from gateway.trunk.bridge import ModemBridge
from gateway.trunk.call import CallEvent, CallState, EndReason
from gateway.trunk.dialplan import decide, policy_from
from gateway.trunk.driver import LinkState, Modem, ModemSettings, Timeouts
from gateway.trunk.errors import TrunkError
from gateway.trunk.limits import TrunkGuard
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
    caller_key: str  # checks Kamailio's caller stamp (gateway/sip/stamp.py); never logged


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
        write_private(self.path, json.dumps({"day": self.day, "seconds": self.seconds}))

    def _roll(self) -> None:
        today = dt.date.today().isoformat()
        if today != self.day:
            self.day, self.seconds = today, 0.0


class Leg(SafeCall):
    """One SIP call of the agent; forwards its callbacks to the agent (on the pump's thread).

    gateway.pjsafe keeps it alive until it ends and makes every operation on it safe afterwards.
    """

    def __init__(self, agent: TrunkAgent, account: Account, call_id: int = pj.PJSUA_INVALID_ID) -> None:
        self.agent = agent
        self.trunk_call: TrunkCall | None = None
        self.answered = False
        self.target = ""  # the URI this leg calls (ring-group legs)
        super().__init__(account, call_id)

    def on_state(self, info: Any) -> None:
        """Forward the state change."""
        self.agent.on_leg_state(self, info)

    def on_media(self) -> None:
        """Connect audio once the call's media is active."""
        self.agent.on_leg_media(self)

    def on_dtmf(self, digit: str) -> None:
        """A digit from the phone (RFC 4733 or SIP INFO)."""
        self.agent.on_leg_dtmf(self, digit)

    def on_transfer_request(self, target: str) -> SafeCall | int:
        """The phone transfers the trunk call (blind, REFER): the new leg is ours to follow."""
        return self.agent.on_transfer(self, target)


class Account(UaAccount):
    """The agent's registration at Kamailio."""

    def __init__(self, agent: TrunkAgent, ua: UserAgent) -> None:
        super().__init__(ua)
        self.agent = agent
        self.reg_code = 0

    def on_registration(self, code: int, reason: str) -> None:
        """Remember the registration's status."""
        self.reg_code = code
        log.info("registration", code=code, reason=reason)

    def on_message_status(self, to: str, code: int, reason: str) -> None:
        """Log how a notification MESSAGE fared."""
        log.info("message delivered" if code // 100 == 2 else "message not delivered", to=_uri_user(to), code=code)

    def on_incoming_call(self, call_id: int, message: str, source: str) -> None:
        """An INVITE from Kamailio: a phone dialled an external number."""
        self.agent.on_invite(Leg(self.agent, self, call_id), message, source)


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
    callback: str = ""  # inbound: the PSAP calling back, so this extension (its emergency caller) rings first
    escalation: asyncio.Task[None] | None = None  # inbound call back: the ring group joins when this fires


class Slot:
    """A modem in the pool: driver, audio bridge, and its current call."""

    def __init__(self, name: str, modem: Modem, bridge: ModemBridge) -> None:
        self.name = name
        self.modem = modem
        self.bridge = bridge
        self.call: TrunkCall | None = None
        self.seconds_today = 0.0
        self.sim_number: str | None = None  # the SIM's own number, from the config: the emergency callback number

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

    @property
    def emergency_capable(self) -> bool:
        """Whether the modem can dial an emergency number now (also in limited service)."""
        return self.modem.emergency_capable


def _epoch(when: dt.datetime | None) -> float | None:
    return when.timestamp() if when is not None else None


def _request_user(message: str) -> str:
    first = message.split("\r\n", 1)[0]
    found = re.match(r"INVITE\s+sips?:([^@;>\s]+)@", first)
    return found.group(1) if found else ""


def _uri_user(uri: str) -> str:
    # The URI of a name-addr, never a "sip:…@" inside its display name.
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', "", uri)
    inner = re.search(r"<([^>]*)>", bare)
    found = re.match(r"\s*sips?:([^@;>\s]+)@", inner.group(1) if inner else bare)
    return found.group(1) if found else ""


class TrunkAgent:
    """The agent process: pjsua2, the modems, the policy, and a small control API."""

    def __init__(
        self,
        config: TrunkConfig,
        secrets: AgentSecrets,
        data_dir: Path,
        timeouts: Timeouts,
        emergency: EmergencyConfig | None = None,
        drill: DrillConfig | None = None,
    ) -> None:
        self.config = config
        self.emergency = emergency or EmergencyConfig()
        self.secrets = secrets
        self.policy = policy_from(config, drill)
        self.ledger = MinutesLedger(data_dir / "trunk-minutes.json")
        self.guard = TrunkGuard()  # calls per minute per extension, and limit trips for the daemon's alerts
        self.timeouts = timeouts
        self.slots: list[Slot] = []
        self.pool = ModemPool([])
        self.calls: dict[int, TrunkCall] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.sms_inbox: list[dict[str, Any]] = []
        self.link_events: list[dict[str, Any]] = []  # modems leaving and reaching READY, for the daemon's events
        self.emergency_events: list[dict[str, Any]] = []  # emergency numbers dialled, for the daemon's notifications
        self._emergency_news = asyncio.Event()  # set (and replaced) at each: the daemon's long poll answers at once
        self._callbacks: dict[str, tuple[str, float]] = {}  # modem → (emergency caller, monotonic end of the window)
        self.ua: UserAgent | None = None  # pjsua2, its calls and ports (gateway.pjsafe keeps the lifecycle rules)
        self.account: Account | None = None
        self.ringer: EmergencyRinger | None = None  # emergency.ring: the daemon's POST /ring
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

    def _start_pjsua(self) -> UserAgent:
        # 16 kHz when a modem delivers it, so its audio is not squeezed through 8 kHz; the
        # conference bridge resamples the 8 kHz ports (other modems, narrowband calls).
        clock_rate = 16000 if any(m.wideband for m in self.config.modems) else 8000
        ua = UserAgent(
            "Lifeline trunk agent",
            clock_rate=clock_rate,
            ptime_ms=self.config.audio_ptime_ms,
            ec_tail_ms=0,  # GSM modules cancel echo themselves; analog lines get none anyway
        )
        self.ua = ua
        # G.711 only (G.722 first with a wideband modem): the modem's audio is telephone audio
        # already. Speex or Opus would cost the Pi CPU per call, and a glitch on the line (a late
        # read, a lost byte) sends Speex into half a second of loud, clipped tone at the phone.
        wideband = any(m.wideband for m in self.config.modems)
        ua.only_codecs([*(["G722/16000/1"] if wideband else []), "PCMA/8000/1", "PCMU/8000/1"])
        ua.udp_transport("127.0.0.1")  # loopback only: Kamailio is the agent's only peer
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
        account = Account(self, ua)
        ua.add_account(account, acfg)
        self.account = account
        self.ringer = EmergencyRinger(account, f"{s.sip_host}:{s.sip_port}", s.realm, clock_rate)
        return ua

    def _build_modems(self, ua: UserAgent) -> None:
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
            ua.adopt(bridge)  # out of the conference, on this thread, before the library goes
            slot = Slot(mc.name, modem, bridge)
            slot.sim_number = mc.number
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
        ua = self._start_pjsua()
        try:
            self._build_modems(ua)
            for slot in self.slots:
                await slot.modem.start()
            await self._start_api()
            log.info("trunk agent running", modems=[s.name for s in self.slots], extension=self.secrets.auth_user)
            while not self._stopping.is_set():
                ua.pump(0)
                await asyncio.sleep(0.01)  # SIP needs no finer timing; media runs on pjsua2's own clock
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        for call in list(self.calls.values()):
            await self._end(call, "agent stopping")
        for slot in self.slots:
            await slot.modem.stop()
        for slot in self.slots:
            slot.bridge.disconnect()
        if self.ringer is not None:
            self.ringer.stop()
        if self.ua is not None:
            # Hangs up what is left, lets the BYEs go, takes the bridges out of the conference and
            # destroys every call and port before the library (gateway.pjsafe, rule 5). Before the
            # control API, whose cleanup waits for requests in flight: SIGKILL must not find it undone.
            self.ua.close(pump_ms=200)
            log.info("trunk SIP side closed")
        if self._runner is not None:
            # The daemon's emergency long poll would hold cleanup for its whole wait (then SIGKILL):
            # answer it now, and give any other request a short grace only.
            self._emergency_news.set()
            await self._runner.cleanup()
        log.info("trunk agent stopped")

    # ------------------------------------------------------------------ outbound: phone → modem

    def on_invite(self, leg: Leg, message: str, source: str) -> None:
        """A phone dialled an external number (pump thread)."""
        # Who calls comes from Kamailio's signed stamp only (it authenticated the caller), and only
        # from Kamailio's own address: never from a From header or its display name.
        stamped = stamped_call(message, self.secrets.caller_key) if source == self._kamailio_address() else None
        if stamped is None:
            log.warning("refused an INVITE without Kamailio's caller stamp", source=source)
            self._reject(leg, 403, "Forbidden")
            return
        dialled, extension = stamped.dialled, stamped.caller
        if dialled == self.secrets.auth_user:
            self._reject(leg, 404, "Not Found")
            return
        ongoing = sum(1 for c in self.calls.values() if c.outgoing and c.extension == extension and not c.emergency)
        usage = self.guard.usage(extension, self.ledger.minutes_today(), ongoing)
        decision = decide(self.policy, extension, dialled, usage)
        if not decision.allowed:
            if decision.limit:
                self.guard.tripped(extension, decision)
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
        if not decision.emergency:
            self.guard.started(extension)
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
        if decision.emergency:
            self._emergency_dialled(call, choice.preempt)  # after the dial is under way: it goes first

    def _emergency_dialled(self, call: TrunkCall, preempted: bool) -> None:
        """Arm the call back and tell the daemon, whose long poll is waiting for exactly this."""
        slot = call.slot
        full = slot.link is LinkState.READY  # limited service: no SIM the network knows, so no call back
        window = self.emergency.callback_window_s
        if full and window:
            self._callbacks[slot.name] = (call.extension, time.monotonic() + window)
        event = {
            "call": call.uid,
            "extension": call.extension,
            "number": call.number,
            "modem": slot.name,
            "service": "full" if full else "limited",
            "problem": None if full else slot.modem.status.problem,
            "preempted": preempted,
            "callback_number": slot.sim_number if full else None,
            "callback_window_s": window if full else 0,
            "at": time.time(),
        }
        self.emergency_events.append(event)
        del self.emergency_events[:-100]
        news, self._emergency_news = self._emergency_news, asyncio.Event()
        news.set()

    def _callback_for(self, slot: Slot) -> str:
        """The extension a call to this modem's SIM rings first: its last emergency caller, within the window."""
        extension, until = self._callbacks.get(slot.name, ("", 0.0))
        if time.monotonic() > until:
            self._callbacks.pop(slot.name, None)
            return ""
        return extension

    def _kamailio_address(self) -> str:
        host = self.secrets.sip_host
        return f"[{host}]:{self.secrets.sip_port}" if ":" in host else f"{host}:{self.secrets.sip_port}"

    async def _place(self, call: TrunkCall, preempt: bool) -> None:
        slot = call.slot
        if preempt and slot.call is not None:
            await self._end(slot.call, "preempted by an emergency call", sip=(503, "Call Preempted"))
        slot.call = call
        slot.bridge.reset()
        try:
            await slot.modem.dial(call.number, emergency=call.emergency)
        except (TrunkError, ValueError) as err:
            log.warning("dial failed", call=call.id, error=str(err))
            if not call.ended:
                await self._end(call, f"dial failed: {err}", sip=(503, "Trunk Dial Failed"))

    def _reject(self, leg: Leg, status: int, reason: str) -> None:
        leg.hangup(status, reason)

    # ------------------------------------------------------------------ modem events

    def on_modem_call(self, slot: Slot, event: CallEvent) -> None:
        """A call state change on a modem (asyncio loop)."""
        call = slot.call
        if event.state is CallState.INCOMING:
            # A call that is ending (its hang-up still under way) already makes way for the next one.
            if call is None or call.ended:
                call = TrunkCall(next(self._ids), False, slot, event.number or "")
                slot.call = call
                self.calls[call.id] = call
                slot.bridge.reset()
                call.callback = self._callback_for(slot)
                log.info(
                    "trunk call in",
                    call=call.id,
                    caller=event.number or "withheld",
                    modem=slot.name,
                    emergency_callback=call.callback or None,
                )
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
            with contextlib.suppress(UserAgentError):  # the phone may have hung up meanwhile
                call.leg.dial_dtmf(digit)

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
        # The PSAP calling back after an emergency call: its caller's phone, whoever the group is.
        members = (call.callback,) if call.callback else self.config.ring_group
        if self.account is None or not members:
            log.warning("incoming trunk call but no ring group configured", call=call.id)
            return
        if call.callback:
            call.escalation = asyncio.get_running_loop().create_task(self._callback_escalates(call))
        self._ring(call, members)

    async def _callback_escalates(self, call: TrunkCall) -> None:
        await asyncio.sleep(self.emergency.callback_alone_s)
        self._group_joins(call, "the emergency caller did not answer in time")

    def _group_joins(self, call: TrunkCall, why: str) -> None:
        """The call back has rung its caller alone long enough (or could not): the ring group rings too."""
        if call.ended or call.leg is not None or not call.callback:
            return
        call.callback = ""
        others = tuple(m for m in self.config.ring_group if not any(_uri_user(leg.target) == m for leg in call.ringing))
        log.info("emergency call back: ringing the group too", call=call.id, why=why)
        self._ring(call, others)
        if not call.ringing:
            self._spawn(self._end(call, "nobody could be rung for the emergency call back"))

    def _ring(self, call: TrunkCall, members: tuple[str, ...]) -> None:
        account = self.account
        if account is None:
            return
        shown = call.number or "anonymous"
        s = self.secrets
        for member in members:
            leg = Leg(self, account)
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
            leg.target = f"sip:{member}@{s.sip_host}:{s.sip_port}"
            try:
                leg.make_call(leg.target, prm=prm)
            except UserAgentError as err:
                log.warning("cannot ring", member=member, error=str(err))
                continue
            call.ringing.append(leg)
        log.info("ringing", call=call.id, members=list(members), caller=shown)

    # ------------------------------------------------------------------ SIP leg events (pump thread)

    def on_leg_state(self, leg: Leg, info: Any) -> None:
        """A SIP leg changed state (after DISCONNECTED the leg is gone: gateway.pjsafe refuses operations on it)."""
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
                other.hangup()
            log.info("answered", call=call.id, by=_uri_user(str(info.remoteUri)))
            self._spawn(self._answer_modem(call))
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            if leg in call.ringing:
                call.ringing.remove(leg)
                if not call.ringing and call.leg is None and not call.ended and call.callback:
                    self._group_joins(call, f"the emergency caller's phone answered {info.lastStatusCode}")
                elif not call.ringing and call.leg is None and not call.ended:
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

    def on_transfer(self, leg: Leg, target: str) -> Leg | int:
        """A blind transfer (REFER) of a trunk call to another extension: accept and follow the new leg."""
        call = leg.trunk_call
        if call is None or call.leg is not leg or call.active_at is None or call.transfer is not None:
            return 603  # only an established trunk call can be transferred, once at a time
        if self.account is None:
            return 503
        new = Leg(self, self.account)
        new.trunk_call = call
        call.transfer = new
        log.info("transfer", call=call.id, to=target)
        return new

    def _transfer_progress(self, call: TrunkCall, leg: Leg, info: Any) -> None:
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            old, call.leg, call.transfer = call.leg, leg, None
            leg.answered = True
            if old is not None:
                old.trunk_call = None
                old.hangup()  # nothing if it has hung up already
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
        if code >= 200 and leg.trunk_call is not None:
            prm.txOption.headers.append(self._trunk_header(leg.trunk_call))  # for the call record
        with contextlib.suppress(UserAgentError):  # the phone may have hung up meanwhile
            leg.answer(code, prm=prm)

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
        if leg is None or not leg.has_active_audio():
            return
        try:
            call.slot.bridge.connect(leg)
        except UserAgentError as err:
            log.warning("cannot bridge audio", call=call.id, error=str(err))
            return
        log.info("audio bridged", call=call.id, modem=call.slot.name, early=call.active_at is None)

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
        for task in (call.ring_task, call.escalation):
            if task is not None:
                task.cancel()
        legs = [*call.ringing, *(leg for leg in (call.leg, call.transfer) if leg is not None)]
        call.ringing.clear()
        for leg in legs:
            leg.trunk_call = None
            if leg.gone:
                continue
            prm = pj.CallOpParam(True)
            if not leg.answered and call.outgoing:
                prm.statusCode, prm.reason = sip
                prm.txOption.headers.append(self._trunk_header(call))
            leg.hangup(prm=prm)
        if not modem_done:
            with contextlib.suppress(TrunkError):
                await slot.modem.hang_up()
        if call.active_at is not None:
            seconds = time.monotonic() - call.active_at
            slot.seconds_today += seconds
            if not call.emergency and call.outgoing:
                self.ledger.add(seconds)
        if call.emergency and slot.name in self._callbacks:
            # The PSAP calls back after the call has ended: the window counts from here.
            self._callbacks[slot.name] = (call.extension, time.monotonic() + self.emergency.callback_window_s)
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
            # A free modem first: an SMS during a call works but waits behind the call's commands.
            ready = sorted((s for s in self.slots if s.link is LinkState.READY), key=lambda s: s.busy)
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

    def send_message(self, extensions: list[str], text: str) -> dict[str, str]:
        """A SIP MESSAGE to each extension through Kamailio (on the pump's thread); per-extension result."""
        results: dict[str, str] = {}
        s = self.secrets
        for extension in extensions:
            if self.account is None or not re.fullmatch(r"\+?[0-9*#]{1,32}", extension):
                results[extension] = "not an extension" if self.account else "no SIP account"
                continue
            try:
                self.account.send_message(f"sip:{extension}@{s.sip_host}:{s.sip_port}", text)
                results[extension] = "sent"
            except UserAgentError as err:
                results[extension] = str(err)
        log.info("messages sent", results=results)
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

        async def get_limit_events(request: web.Request) -> web.Response:
            return web.json_response(self.guard.since(float(request.query.get("since", "0"))))

        app.router.add_get("/limit-events", get_limit_events)

        async def get_emergency_events(request: web.Request) -> web.Response:
            # A long poll: the daemon waits here and hears of an emergency call the moment it is dialled.
            since = float(request.query.get("since", "0"))
            wait = min(float(request.query.get("wait", "0")), 60.0)
            news = [e for e in self.emergency_events if e["at"] > since]
            if not news and wait > 0:
                waiter = self._emergency_news
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await waiter.wait()
                news = [e for e in self.emergency_events if e["at"] > since]
            return web.json_response(news)

        async def post_message(request: web.Request) -> web.Response:
            body = await request.json()
            to, text = body.get("to"), body.get("text")
            if not isinstance(to, list) or not isinstance(text, str) or not text:
                return web.json_response({"error": "to (list of extensions) and text are required"}, status=400)
            return web.json_response({"results": self.send_message([str(t) for t in to], text)})

        app.router.add_get("/emergency-events", get_emergency_events)
        app.router.add_post("/message", post_message)

        async def post_ring(request: web.Request) -> web.Response:
            # emergency.ring: the daemon asks once the emergency call's dial is under way (gateway/trunk/alerting.py).
            body = await request.json()
            to, display, caller, ring_s = body.get("to"), body.get("display"), body.get("caller"), body.get("ring_s")
            if not (isinstance(to, list) and isinstance(display, str) and isinstance(caller, str)) or not (
                isinstance(ring_s, int | float) and 1 <= ring_s <= 300
            ):
                error = "to (list), display, caller and ring_s (1-300) are required"
                return web.json_response({"error": error}, status=400)
            if self.ringer is None:
                return web.json_response({"results": dict.fromkeys(map(str, to), "no SIP account")})
            return web.json_response({"results": await self.ringer.ring([str(t) for t in to], display, caller, ring_s)})

        app.router.add_post("/ring", post_ring)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
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
    agent = TrunkAgent(config.trunk, secrets, config.data_dir, timeouts, config.emergency, config.drill)
    try:
        asyncio.run(agent.run())
    except TrunkError as err:
        log.error("trunk agent cannot start", error=str(err))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
