"""One trunk call's two sides, the modem and the SIP leg: answer, bridge the audio, end both once."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pjsua2 as pj
import structlog

from gateway.cdr import trunkinfo
from gateway.config import DrillConfig, EmergencyConfig, TrunkConfig
from gateway.errors import UserAgentError
from gateway.pjsafe import UserAgent
from gateway.trunk.agent.events import EventLog
from gateway.trunk.agent.model import AgentSecrets, MinutesLedger, Slot, TrunkCall
from gateway.trunk.alerting import EmergencyRinger
from gateway.trunk.dialplan import policy_from
from gateway.trunk.errors import TrunkError
from gateway.trunk.limits import TrunkGuard
from gateway.trunk.link import Timeouts
from gateway.trunk.pool import ModemPool
from gateway.trunk.profiles import Family

if TYPE_CHECKING:
    from gateway.trunk.agent.legs import Account, Leg

log = structlog.get_logger("trunk.agent")


class CallPlumbing:
    """The agent's state, and what every call flow does to a call's modem and SIP sides."""

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
        self.events = EventLog()  # link changes, limit trips, SMS, emergency calls: streamed to the daemon at once
        self._callbacks: dict[str, tuple[str, float]] = {}  # modem → (emergency caller, monotonic end of the window)
        self.ua: UserAgent | None = None  # pjsua2, its calls and ports (gateway.pjsafe keeps the lifecycle rules)
        self.account: Account | None = None
        self.ringer: EmergencyRinger | None = None  # emergency.ring: the daemon's POST /ring
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

    def _reject(self, leg: Leg, status: int, reason: str) -> None:
        leg.hangup(status, reason)

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
