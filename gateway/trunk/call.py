"""The modem-side call state machine: URCs of every family in, call state changes out (pure)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import structlog

from gateway.trunk import at
from gateway.trunk.profiles import Family

log = structlog.get_logger("trunk.call")


class CallState(enum.StrEnum):
    """Where the one call on a modem is."""

    IDLE = "idle"
    DIALING = "dialing"
    ALERTING = "alerting"  # the far end rings
    INCOMING = "incoming"  # our modem rings
    ACTIVE = "active"
    ENDED = "ended"


class EndReason(enum.StrEnum):
    """Why a call ended, as far as the modem tells us."""

    NORMAL = "normal"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    REJECTED = "rejected"
    UNREACHABLE = "unreachable"  # no network, no circuit, LTE without VoLTE, bad number
    LOCAL = "local"  # we hung up
    LINE_LOST = "line-lost"  # the modem went away or was reset under the call
    MISSED = "missed"  # an incoming call the caller gave up on


# 24.008 cause values (Huawei ^CEND, +CEER) mapped to what the caller should hear.
CAUSES = {
    1: EndReason.UNREACHABLE,
    3: EndReason.UNREACHABLE,
    16: EndReason.NORMAL,
    17: EndReason.BUSY,
    18: EndReason.NO_ANSWER,
    19: EndReason.NO_ANSWER,
    21: EndReason.REJECTED,
    27: EndReason.UNREACHABLE,
    28: EndReason.UNREACHABLE,
    34: EndReason.UNREACHABLE,
    38: EndReason.UNREACHABLE,
    41: EndReason.UNREACHABLE,
    42: EndReason.UNREACHABLE,
}


@dataclass(frozen=True)
class CallEvent:
    """A change of the call: the new state, the far end's number if known, why it ended."""

    state: CallState
    number: str | None = None
    reason: EndReason | None = None


_CLCC_STATES = {
    at.CallStat.DIALING: CallState.DIALING,
    at.CallStat.ALERTING: CallState.ALERTING,
    at.CallStat.ACTIVE: CallState.ACTIVE,
    at.CallStat.HELD: CallState.ACTIVE,
    at.CallStat.INCOMING: CallState.INCOMING,
    at.CallStat.WAITING: CallState.INCOMING,
}


class CallTracker:
    """Follows one call through the URCs the modem family sends; one `_set_state` for changes."""

    def __init__(self, family: Family) -> None:
        self.family = family
        self.state = CallState.IDLE
        self.number: str | None = None
        self.outgoing = False
        self._cid = at.V253CallerId()
        self._local = False
        self._calls = 0  # calls begun so far: which call a hang-up was for
        self._hanging_up: int | None = None  # the call AT+CHUP is under way for

    def _set_state(self, new: CallState, reason: EndReason | None = None) -> list[CallEvent]:
        if new is self.state and new is not CallState.INCOMING:
            return []
        if self.state is CallState.IDLE and new in (CallState.ENDED,):
            self.number, self._local = None, False
            return []  # a stray NO CARRIER with no call: nothing to end
        log.debug("call state", old=self.state.value, new=new.value, reason=reason.value if reason else None)
        if self.state is CallState.IDLE:
            self._calls += 1
        self.state = new
        event = CallEvent(new, self.number, reason)
        if new is CallState.ENDED:
            self.state, self.number, self.outgoing, self._cid = CallState.IDLE, None, False, at.V253CallerId()
            self._local = False
        return [event]

    def dialing(self, number: str) -> list[CallEvent]:
        """We sent ATD<number>."""
        self.number, self.outgoing = number, True
        return self._set_state(CallState.DIALING)

    def dial_result(self, final: at.Final) -> list[CallEvent]:
        """The final result of ATD: OK means the call proceeds by URCs."""
        if final.kind.success:  # OK, or VCON on an analog line
            return []
        reason = {
            at.FinalKind.BUSY: EndReason.BUSY,
            at.FinalKind.NO_ANSWER: EndReason.NO_ANSWER,
        }.get(final.kind, EndReason.UNREACHABLE)
        return self._set_state(CallState.ENDED, reason)

    def answered(self) -> list[CallEvent]:
        """ATA said OK."""
        return self._set_state(CallState.ACTIVE)

    def hanging_up(self) -> None:
        """We are about to hang up: the end URCs that follow are our doing."""
        self._local = True
        self._hanging_up = self._calls

    def hung_up(self) -> list[CallEvent]:
        """We hung up (and the call we hung up is still the one tracked)."""
        hung, self._hanging_up = self._hanging_up, None
        if hung is not None and hung != self._calls:
            # Its end URC came before AT+CHUP's OK was handled, and the next call (the PSAP calling
            # back, say) is already ringing: that one must not be ended in its place.
            return []
        return self._set_state(CallState.ENDED, EndReason.LOCAL)

    def line_lost(self) -> list[CallEvent]:
        """The modem dropped off the bus, or is being reset: the call is gone with it."""
        return self._set_state(CallState.ENDED, EndReason.LINE_LOST)

    def feed(self, urc: at.Urc) -> list[CallEvent]:
        """React to one URC; returns the call events it causes (often none)."""
        name, line = urc.name, urc.line
        if name in ("RING", "+CRING"):
            if self.state in (CallState.IDLE, CallState.INCOMING):
                self.outgoing = False
                if self.state is CallState.IDLE:
                    return self._set_state(CallState.INCOMING)
            return []
        if name == "+CLIP":
            number = at.parse_clip(line).number
            if self.state in (CallState.IDLE, CallState.INCOMING) and number != self.number:
                self.number = number
                return self._set_state(CallState.INCOMING)
            return []
        if name in ("NMBR", "NAME", "DATE", "TIME"):
            self._cid = at.merge_v253_cid(self._cid, line)
            if name == "NMBR" and self._cid.number != self.number:
                self.number = self._cid.number
                return self._set_state(CallState.INCOMING)
            return []
        if name == "+CLCC":
            return self._entry(at.parse_clcc(line))
        if name == "+QIND":
            parsed = at.parse_qind(line)
            return self._entry(parsed) if isinstance(parsed, at.CallEntry) else []
        if name in ("^ORIG", "^CONF", "^CONN"):
            kind, _ = at.parse_huawei_call(line)
            return self._set_state(
                {"^ORIG": CallState.DIALING, "^CONF": CallState.ALERTING}.get(kind, CallState.ACTIVE)
            )
        if name == "^CEND":
            end = at.parse_cend(line)
            reason = CAUSES.get(end.cause, EndReason.NORMAL) if end.cause is not None else EndReason.NORMAL
            return self._end(reason)
        if name == "VOICE CALL":
            event = at.parse_voice_call(line)
            return self._set_state(CallState.ACTIVE) if event.begin else self._end(EndReason.NORMAL)
        if name == "MISSED_CALL":
            return self._end(EndReason.MISSED)
        final = at.parse_final(line)
        if final is not None and final.kind in at.CALL_RESULTS:
            return self._end(
                {at.FinalKind.BUSY: EndReason.BUSY, at.FinalKind.NO_ANSWER: EndReason.NO_ANSWER}.get(
                    final.kind, EndReason.NORMAL
                )
            )
        return []

    def _end(self, reason: EndReason) -> list[CallEvent]:
        if self._local:
            reason = EndReason.LOCAL
        if reason is EndReason.NORMAL:
            # A call that ends before it was ever answered did not end "normally" for the caller.
            if self.state is CallState.INCOMING:
                reason = EndReason.MISSED
            elif self.state in (CallState.DIALING, CallState.ALERTING):
                reason = EndReason.NO_ANSWER if self.state is CallState.ALERTING else EndReason.UNREACHABLE
        return self._set_state(CallState.ENDED, reason)

    def _entry(self, entry: at.CallEntry) -> list[CallEvent]:
        if self.number and entry.number and not same_number(self.number, entry.number):
            # A late report about the call before (its end arrives after our AT+CHUP's OK, and
            # the next call may already be dialling under the same index).
            return []
        if entry.stat is at.CallStat.DISCONNECTED and self.state is CallState.IDLE:
            return []  # the end of a call we already closed: it must not leave its number behind
        if entry.number and not self.number:
            self.number = entry.number
        if entry.stat is at.CallStat.DISCONNECTED:
            return self._end(EndReason.NORMAL)
        new = _CLCC_STATES[entry.stat]
        if new is CallState.INCOMING and self.state is CallState.INCOMING:
            return []
        self.outgoing = entry.direction is at.CallDir.OUTGOING
        return self._set_state(new)


def same_number(a: str, b: str) -> bool:
    """Whether two forms of a number name the same line ('+4930123456' and '030123456')."""
    da, db = "".join(c for c in a if c.isdigit()), "".join(c for c in b if c.isdigit())
    tail = min(len(da), len(db), 8)
    return tail > 0 and da[-tail:] == db[-tail:]
