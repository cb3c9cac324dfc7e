"""A pjsua2 call (SafeCall) touched only while it exists, and the pj.Call behind it that forwards its callbacks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import pjsua2 as pj
import structlog

from gateway.errors import CallGoneError, UserAgentError
from gateway.pjsafe.native import _delete, translate

if TYPE_CHECKING:
    from gateway.pjsafe.account import UaAccount

log = structlog.get_logger("pjsafe")

P = TypeVar("P")


class _PjCall(pj.Call):  # type: ignore[misc]
    """The pjsua2 Call behind a SafeCall: forwards callbacks, never handed to callers."""

    def __init__(self, owner: SafeCall, account: UaAccount, call_id: int) -> None:
        super().__init__(account, call_id)
        self.owner = owner

    def onCallState(self, prm: Any) -> None:  # noqa: N802 - pjsua2 callback name
        """Forward the state change."""
        self.owner._on_state()

    def onCallMediaState(self, prm: Any) -> None:  # noqa: N802
        """Forward the media change."""
        self.owner._on_media()

    def onDtmfDigit(self, prm: Any) -> None:  # noqa: N802
        """Forward a received digit."""
        self.owner._hook("dtmf", self.owner.on_dtmf, str(prm.digit))

    def onCallTsxState(self, prm: Any) -> None:  # noqa: N802
        """Forward the final answer to an INVITE we sent within the call (a re-INVITE)."""
        event = prm.e
        if event.type != pj.PJSIP_EVENT_TSX_STATE:
            return
        tsx = event.body.tsxState.tsx
        if tsx.role != pj.PJSIP_ROLE_UAC or tsx.method != "INVITE" or tsx.state != pj.PJSIP_TSX_STATE_COMPLETED:
            return
        if self.owner.state != "CONFIRMED":
            return  # the first INVITE's answers come as state changes
        message = ""
        if event.body.tsxState.type == pj.PJSIP_EVENT_RX_MSG:
            message = str(event.body.tsxState.src.rdata.wholeMsg)
        self.owner._hook("re-INVITE answer", self.owner.on_reinvite_answer, int(tsx.statusCode), message)

    def onCallTransferRequest(self, prm: Any) -> None:  # noqa: N802
        """Let the owner follow a REFER with a call of its own, or refuse it."""
        self.owner._on_transfer_request(prm)

    def onCallReplaceRequest(self, prm: Any) -> None:  # noqa: N802
        """Refuse INVITE/Replaces: pjsua2 would give this call's object to the new call."""
        prm.statusCode = pj.PJSIP_SC_DECLINE


class SafeCall:
    """A pjsua2 call touched only while it exists: every operation guarded, errors translated.

    Subclasses override the on_* hooks, which run on the owner thread inside pump() (or inside the
    operation that caused them); exceptions in hooks are logged, never passed into pjsua2.
    """

    def __init__(self, account: UaAccount, call_id: int = pj.PJSUA_INVALID_ID) -> None:
        ua = account.ua
        ua.check("create a call")
        if account.removed:
            raise UserAgentError("create a call: the account has been removed")
        self.ua = ua
        self.account = account
        self.state = "NULL"  # pjsua2's state text as last delivered: CALLING, EARLY, CONFIRMED, DISCONNECTED…
        self.last_code = 0
        self.last_reason = ""
        self.last_info: Any = None  # the last pj.CallInfo seen: a copy, safe to read after the call
        self.gone = False  # DISCONNECTED delivered (or the call failed to start, or the agent closed)
        self._placed = call_id != pj.PJSUA_INVALID_ID
        self._links: list[tuple[Any, int, bool, bool]] = []  # (port, conference slot, to call, from call)
        self._attached: list[Any] = []  # ports released when the call ends (its tones, recorders)
        self._depth = 0  # our own operations on the stack: the C++ Call must outlive them
        self._destroy_pending = False
        self._pj = _PjCall(self, account, call_id)
        ua._calls.add(self)
        if call_id >= 0:
            ua._claims[call_id] = self
            with contextlib.suppress(UserAgentError):
                self.state = str(self.info().stateText)  # INCOMING: no callback has told it yet

    # ---------------------------------------------------------------- hooks

    def on_state(self, info: Any) -> None:
        """The call's state changed (info: pj.CallInfo); after DISCONNECTED the call is gone."""

    def on_media(self) -> None:
        """The call's media changed (link ports again if has_active_audio())."""

    def on_dtmf(self, digit: str) -> None:
        """A DTMF digit arrived."""

    def on_reinvite_answer(self, code: int, message: str) -> None:
        """An INVITE we sent in the call was refused or ended (code >= 300; message: the answer as received)."""

    def on_transfer_request(self, target: str) -> SafeCall | int:
        """A REFER to target: a new, unplaced SafeCall on the same account follows it; a code refuses it."""
        return int(pj.PJSIP_SC_DECLINE)

    # ---------------------------------------------------------------- operations

    @property
    def call_id(self) -> int:
        """pjsua's id for the call, -1 once gone or before it started."""
        return -1 if self.gone else int(self._pj.getId())

    def make_call(self, uri: str, *, prm: Any = None) -> None:
        """Place the call (prm: a pj.CallOpParam for headers, From...); UserAgentError if it cannot start."""
        if self._placed:
            raise UserAgentError("make call: this call was placed already")
        self._placed = True
        with self._op("make call", placing=True) as call:
            try:
                call.makeCall(uri, prm if prm is not None else pj.CallOpParam(True))
            except pj.Error:
                if not self.gone:  # pjsua freed the slot without a DISCONNECTED: none will come
                    self.state = "DISCONNECTED"
                    self._bury()
                raise
        with contextlib.suppress(UserAgentError):
            self.info()

    def answer(self, code: int = 200, *, prm: Any = None) -> None:
        """Answer with code (180, 183, 200, or a final refusal)."""
        prm = prm if prm is not None else pj.CallOpParam(True)
        prm.statusCode = code
        with self._op(f"answer {code}") as call:
            call.answer(prm)

    def hangup(self, code: int = 0, reason: str = "", *, prm: Any = None) -> bool:
        """Hang up (BYE, CANCEL or a refusal); False when there was nothing to hang up. Never raises."""
        if self.gone or self.ua.closed:
            return False
        if not self._placed or self._pj.getId() < 0:
            self._bury()  # never started (or a transfer that never came): nothing in pjsua to end
            return False
        prm = prm if prm is not None else pj.CallOpParam(True)
        if code:
            prm.statusCode = code
        if reason:
            prm.reason = reason
        try:
            with self._op("hang up") as call:
                call.hangup(prm)
        except UserAgentError as err:
            log.debug("hang-up refused", error=str(err))
            return False
        return True

    def info(self) -> Any:
        """pjsua2's CallInfo now (also kept as last_info)."""
        with self._op("call info") as call:
            self.last_info = call.getInfo()
        return self.last_info

    def dial_dtmf(self, digits: str) -> None:
        """Send DTMF digits (RFC 4733)."""
        with self._op("send DTMF") as call:
            call.dialDtmf(digits)

    def transfer(self, uri: str) -> None:
        """Blind transfer: send REFER to the far end."""
        with self._op("transfer") as call:
            call.xfer(uri, pj.CallOpParam(True))

    def hold(self) -> None:
        """Put the call on hold (re-INVITE with sendonly)."""
        with self._op("hold") as call:
            call.setHold(pj.CallOpParam(True))

    def unhold(self) -> None:
        """Take the call off hold (re-INVITE with sendrecv)."""
        prm = pj.CallOpParam(True)
        prm.opt.flag = pj.PJSUA_CALL_UNHOLD
        with self._op("unhold") as call:
            call.reinvite(prm)

    def stream_stat(self, index: int = 0) -> Any:
        """pjsua2's StreamStat of media index."""
        with self._op("stream statistics") as call:
            return call.getStreamStat(index)

    def has_active_audio(self) -> bool:
        """Whether the call has audio flowing both ways in the conference (False once gone)."""
        try:
            with self._op("audio state"):
                return self._audio()[1] >= 0
        except UserAgentError:
            return False

    def link(self, port: Any, *, to_call: bool = True, from_call: bool = True) -> None:
        """Connect a port with the call's audio: to_call, the far end hears it; from_call, it hears the far end."""
        with self._op("connect audio") as call:
            index, slot = self._audio()
            if slot < 0:
                raise UserAgentError("connect audio: the call has no active audio")
            media = call.getAudioMedia(index)  # a copy of the call's port: used here, then dropped
            if from_call:
                media.startTransmit(port)
            if to_call:
                port.startTransmit(media)
        self._links = [link for link in self._links if link[0] is not port]
        self._links.append((port, slot, to_call, from_call))

    def unlink(self, port: Any) -> None:
        """Disconnect a port linked with link(); a no-op once the call or its stream is gone (links went with it)."""
        mine = [link for link in self._links if link[0] is port]
        self._links = [link for link in self._links if link[0] is not port]
        if not mine or self.gone or self.ua.closed:
            return
        _, slot, to_call, from_call = mine[0]
        try:
            with self._op("disconnect audio") as call:
                index, now = self._audio()
                if now != slot:
                    return  # the stream it was linked to is gone, and its links with it
                media = call.getAudioMedia(index)
                if from_call:
                    with contextlib.suppress(pj.Error):
                        media.stopTransmit(port)
                if to_call:
                    with contextlib.suppress(pj.Error):
                        port.stopTransmit(media)
        except UserAgentError as err:
            log.debug("audio already disconnected", error=str(err))

    def linked(self, port: Any) -> bool:
        """Whether port is linked with the call's current audio stream."""
        return any(link[0] is port for link in self._links)

    def attach(self, port: P) -> P:
        """Adopt a media port that lives as long as the call (released when it ends)."""
        if self.gone:
            raise CallGoneError("attach a port: the call has ended")
        self.ua.adopt(port)
        self._attached.append(port)
        return port

    def detach(self, port: Any) -> None:
        """Unlink and release an attached port now."""
        self.unlink(port)
        self._attached = [kept for kept in self._attached if kept is not port]
        if not self.ua.closed:
            self.ua.release(port)

    # ---------------------------------------------------------------- internals

    @contextlib.contextmanager
    def _op(self, what: str, *, placing: bool = False) -> Iterator[Any]:
        self.ua.check(what)
        if self.gone:
            raise CallGoneError(f"{what}: the call has ended")
        if not placing and self._pj.getId() < 0:
            raise CallGoneError(f"{what}: the call has not started")
        self._depth += 1
        try:
            yield self._pj
        except pj.Error as err:
            raise translate(what, err) from err
        finally:
            self._depth -= 1
            if not self._depth and self._destroy_pending:
                self._destroy()

    def _audio(self) -> tuple[int, int]:
        """(media index, conference slot) of the active audio, or (-1, -1); only inside an operation or callback."""
        info = self._pj.getInfo()  # held: .media points into it (a SWIG temporary would be freed under us)
        for index, media in enumerate(info.media):
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                return index, int(media.audioConfSlot)
        return -1, -1

    def _hook(self, what: str, hook: Any, *args: Any) -> None:
        try:
            hook(*args)
        except Exception:
            log.exception("call hook failed", hook=what)

    def _on_state(self) -> None:
        if self.gone:
            return
        try:
            info = self._pj.getInfo()  # valid inside the callback, DISCONNECTED included
        except pj.Error as err:
            log.warning("call state unreadable", error=str(translate("call info", err)))
            return
        self.last_info = info
        self.state = str(info.stateText)
        self.last_code = int(info.lastStatusCode)
        self.last_reason = str(info.lastReason)
        ended = info.state == pj.PJSIP_INV_STATE_DISCONNECTED
        if ended:
            self.gone = True  # from here on no operation reaches pjsua2
            self._links.clear()  # pjsua2 removed the stream's conference port, and its links with it
        try:
            self._hook("state", self.on_state, info)
        finally:
            if ended:
                self._bury()

    def _on_media(self) -> None:
        if self.gone:
            return
        try:
            slot = self._audio()[1]
        except pj.Error:
            slot = -1
        # A re-INVITE may give the call a new stream: links made with the old one went with it.
        self._links = [link for link in self._links if link[1] == slot]
        self._hook("media", self.on_media)

    def _on_transfer_request(self, prm: Any) -> None:
        answer: SafeCall | int
        try:
            answer = self.on_transfer_request(str(prm.dstUri))
        except Exception:
            log.exception("call hook failed", hook="transfer")
            answer = int(pj.PJSIP_SC_INTERNAL_SERVER_ERROR)
        if isinstance(answer, SafeCall):
            if answer._placed or answer.gone or answer.account is not self.account:
                log.error("transfer target must be a new call on the same account")
                prm.statusCode = pj.PJSIP_SC_INTERNAL_SERVER_ERROR
                return
            answer._placed = True
            prm.newCall = answer._pj  # pjsua2 gives it the new call's id on its first callback
        else:
            prm.statusCode = answer

    def _bury(self) -> None:
        """The call is over: release its ports and delete its C++ Call as soon as no operation of ours runs."""
        self.gone = True
        self._links.clear()
        for port in self._attached:
            if not self.ua.closed:
                self.ua.release(port)
        self._attached.clear()
        if self._depth:
            self._destroy_pending = True
        else:
            self._destroy()

    def _destroy(self) -> None:
        self._destroy_pending = False
        self.ua._calls.discard(self)
        _delete(self._pj)
