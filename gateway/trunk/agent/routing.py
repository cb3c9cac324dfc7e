"""Call flows: phone → modem (policy, pool, emergency), modem → ring group, call backs, transfers."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from typing import Any

import pjsua2 as pj
import structlog

from gateway.errors import UserAgentError
from gateway.sip.stamp import stamped_call
from gateway.trunk.agent.events import EventKind
from gateway.trunk.agent.legs import Leg, uri_user
from gateway.trunk.agent.model import SIP_FOR_END, Slot, TrunkCall
from gateway.trunk.agent.plumbing import CallPlumbing
from gateway.trunk.call import CallEvent, CallState, EndReason
from gateway.trunk.dialplan import decide
from gateway.trunk.errors import TrunkError
from gateway.trunk.link import LinkState
from gateway.trunk.pool import NoModemError

log = structlog.get_logger("trunk.agent")


class CallRouting(CallPlumbing):
    """Events from Kamailio, the modems and the SIP legs, turned into calls."""

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
                trip = self.guard.tripped(extension, decision)
                if trip is not None:
                    self.events.add(EventKind.LIMIT, trip)
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
        """Arm the call back and tell the daemon (its event stream carries this at once)."""
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
        self.events.add(EventKind.EMERGENCY, event)

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
        self.events.add(
            EventKind.LINK,
            {"modem": slot.name, "old": old.value, "new": new.value, "reason": reason, "problem": problem,
             "at": time.time()},
        )  # fmt: skip

    def on_sms(self, sms: Any) -> None:
        """An incoming SMS: logged, and kept for the daemon to forward."""
        log.info("sms received", sender=sms.sender, chars=len(sms.text))
        stamp = sms.time.isoformat() if sms.time else None
        self.events.add(EventKind.SMS, {"sender": sms.sender, "time": stamp, "text": sms.text, "received": time.time()})

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
        others = tuple(m for m in self.config.ring_group if not any(uri_user(leg.target) == m for leg in call.ringing))
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
            log.info("answered", call=call.id, by=uri_user(str(info.remoteUri)))
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
            log.info("transferred", call=call.id, to=uri_user(str(info.remoteUri)))
            self._connect_audio(call)
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            # The target did not answer: the call stays with the phone that transferred it, if it is still there.
            call.transfer = None
            leg.trunk_call = None
            if call.leg is None or call.leg.state == "DISCONNECTED":
                self._spawn(self._end(call, "transfer target did not answer"))
