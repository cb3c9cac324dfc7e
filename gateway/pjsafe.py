"""pjsua2 used safely: the one place that knows the library's lifecycle rules (trunk agent and lab phones).

pjproject 2.15 aborts the process (PJ_ASSERT) or touches freed memory when its objects outlive their
moment; these rules, read from pjsua2's call.cpp, media.cpp and endpoint.cpp, are enforced here so no
caller has to remember them:

1. One thread owns the library: it creates it, pumps it (no pjsua2 worker threads, mainThreadOnly, so
   every SIP callback runs inside `pump` on that thread) and creates and destroys every pj object.
   Another thread gets UserAgentError.
2. A call's id is valid only until DISCONNECTED has been delivered: pjsua then frees the slot and gives
   the id to the next call, and after libDestroy every id is out of range (pjsua_call_set_user_data
   asserts). A SafeCall checks it is live before every operation (CallGoneError otherwise) and deletes
   its C++ Call inside the DISCONNECTED callback, the one moment pjsua2 allows it, or right after the
   operation that caused it returns: its destructor never detaches or hangs up an id that is no longer its.
3. pjsua2 deletes a call, account or media port whose Python proxy is collected, on whichever thread
   the collector runs (pjsua2's clock thread, a simulator's thread): the UserAgent holds each until it
   destroys it itself. Account ids are reused like call ids, so an account's C++ object goes right
   after pjsua_acc_del: a later ~Account would delete whichever account has its id by then.
4. Media ports (AudioMediaPort subclasses, tone generators, recorders, players) leave the conference
   bridge before libDestroy: their destructors after it assert in pjmedia_conf_remove_port.
5. close() in order: hang up every call (pjsua delivers DISCONNECTED at once), pump so BYEs and CANCELs
   leave, destroy adopted ports, destroy calls that never started, shut accounts and transports down,
   gc.collect() (cyclic garbage holding pj objects is finalized now, on this thread, with the library
   up), destroy any pj object Python still owns (a failed test's frame, say), then libDestroy. Only
   inert proxies remain. An endpoint nobody closed is closed at exit.
6. pj.Error becomes UserAgentError; ids pjsua would assert on are never passed to it.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import threading
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import pjsua2 as pj
import structlog

from gateway.errors import CallGoneError, UserAgentError

log = structlog.get_logger("pjsafe")

P = TypeVar("P")

# pj classes whose C++ destructor calls into the library (conference or call table); plain AudioMedia
# copies, CallInfo and the like free memory only and may go whenever.
_PORT_TYPES = (pj.AudioMediaPort, pj.ToneGenerator, pj.AudioMediaPlayer, pj.AudioMediaRecorder)


def translate(what: str, err: Any) -> UserAgentError:
    """A pj.Error as a UserAgentError naming the operation."""
    return UserAgentError(f"{what}: {err.reason} (pjsua2 status {err.status})")


def _owned(obj: Any) -> bool:
    this = getattr(obj, "this", None)
    return bool(this is not None and this.own())


def _delete(obj: Any) -> None:
    """Run the C++ destructor now (SWIG disowns the proxy, which stays behind inert)."""
    if _owned(obj):
        type(obj).__swig_destroy__(obj)


class UserAgent:
    """The process's pjsua2 library, owned by the thread that creates it; see the module's rules."""

    def __init__(
        self,
        user_agent: str = "",
        *,
        log_level: int = 1,
        clock_rate: int = 8000,
        ptime_ms: int | None = None,
        ec_tail_ms: int | None = None,
    ) -> None:
        self._owner = threading.get_ident()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0  # SIP callbacks only inside pump(), on the owner thread
        cfg.uaConfig.mainThreadOnly = True  # and so are those pjsua2 would run on its media threads
        if user_agent:
            cfg.uaConfig.userAgent = user_agent
        cfg.logConfig.level = log_level
        cfg.logConfig.consoleLevel = log_level
        cfg.medConfig.noVad = True
        cfg.medConfig.clockRate = clock_rate
        if ptime_ms is not None:
            cfg.medConfig.audioFramePtime = ptime_ms
        if ec_tail_ms is not None:
            cfg.medConfig.ecTailLen = ec_tail_ms
        ep: Any = None
        try:
            ep = pj.Endpoint()
            ep.libCreate()
            ep.libInit(cfg)
            ep.audDevManager().setNullDev()  # the conference bridge's clock
            ep.libStart()
        except pj.Error as err:
            if ep is not None:
                with contextlib.suppress(pj.Error):
                    ep.libDestroy()
            raise translate("start pjsua2", err) from err
        self._ep: Any = ep
        self._calls: set[SafeCall] = set()  # not yet destroyed: live, or not started
        self._claims: dict[int, SafeCall] = {}  # incoming call id → its SafeCall, while onIncomingCall runs
        self._ports: list[Any] = []
        self._accounts: list[UaAccount] = []
        self._transports: list[int] = []
        self.closed = False
        atexit.register(self._close_at_exit)

    # ---------------------------------------------------------------- rules 1 and 6

    def check(self, what: str) -> None:
        """UserAgentError unless the library is up and this is its owner thread."""
        if self.closed:
            raise UserAgentError(f"{what}: the SIP user agent is closed")
        if threading.get_ident() != self._owner:
            raise UserAgentError(f"{what}: pjsua2 is owned by another thread")

    @property
    def live_calls(self) -> int:
        """Calls not yet destroyed (live, or created and never started)."""
        return len(self._calls)

    def pump(self, ms: int = 0) -> None:
        """Let pjsua2 handle pending events (and run their callbacks) for up to ms milliseconds."""
        self.check("pump")
        self._ep.libHandleEvents(ms)

    def udp_transport(self, host: str, port: int = 0) -> int:
        """A UDP transport bound to host (port 0: any); returns its id."""
        self.check("create a transport")
        tcfg = pj.TransportConfig()
        tcfg.port = port
        tcfg.boundAddress = host
        try:
            tid = int(self._ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg))
        except pj.Error as err:
            raise translate(f"UDP transport on {host}:{port}", err) from err
        self._transports.append(tid)
        return tid

    def transport_address(self, tid: int) -> str:
        """host:port a transport of ours listens on."""
        self.check("transport address")
        if tid not in self._transports:
            raise UserAgentError(f"transport {tid} is not open")
        return str(self._ep.transportGetInfo(tid).localName)

    def close_transport(self, tid: int) -> None:
        """Close a transport of ours (once; pjsua asserts on an id it does not know)."""
        self.check("close a transport")
        if tid in self._transports:
            self._transports.remove(tid)
            with contextlib.suppress(pj.Error):
                self._ep.transportClose(tid)

    def only_codecs(self, codec_ids: Sequence[str]) -> None:
        """Offer and accept these codecs only, in this order (ids as pjsua2 lists them: "PCMU/8000/1")."""
        self.check("set codecs")
        try:
            known = [str(info.codecId) for info in self._ep.codecEnum2()]
            for codec in known:
                if codec not in codec_ids:
                    self._ep.codecSetPriority(codec, 0)  # 0: disabled
            for rank, codec in enumerate(codec_ids):
                if codec not in known:
                    raise UserAgentError(f"codec {codec} is not in this pjsua2 build")
                self._ep.codecSetPriority(codec, 255 - rank)
        except pj.Error as err:
            raise translate("set codecs", err) from err

    # ---------------------------------------------------------------- accounts

    def add_account(self, account: UaAccount, cfg: Any) -> None:
        """Create the account in pjsua2 (cfg: a pj.AccountConfig); it lives until removed or closed."""
        self.check("add an account")
        try:
            account.create(cfg)
        except pj.Error as err:
            raise translate("add an account", err) from err
        self._accounts.append(account)

    def remove_account(self, account: UaAccount) -> None:
        """Hang up the account's calls and delete it from pjsua2 (its object stays behind, inert)."""
        self.check("remove an account")
        for call in [c for c in self._calls if c.account is account]:
            call.hangup()
            if not call.gone:
                call._bury()  # its C++ Call refers to the account: it must not outlive it
        if account in self._accounts:
            self._accounts.remove(account)
            self._delete_account(account)

    def _delete_account(self, account: UaAccount) -> None:
        account.removed = True
        pj.Account.shutdown(account)  # pjsua_acc_del; subclasses may give `shutdown` another meaning
        _delete(account)

    # ---------------------------------------------------------------- media ports (rules 3 and 4)

    def adopt(self, port: P) -> P:
        """Keep a created media port until release() or close(), which take it out of the conference."""
        self.check("adopt a media port")
        if not isinstance(port, _PORT_TYPES):
            raise UserAgentError(f"adopt: {type(port).__name__} is not a pjsua2 media port")
        if not any(port is kept for kept in self._ports):
            self._ports.append(port)
        return port

    def release(self, port: Any) -> None:
        """Take an adopted port out of the conference and destroy it now, on the owner thread."""
        self.check("release a media port")
        for index, kept in enumerate(self._ports):
            if kept is port:
                del self._ports[index]
                _delete(port)
                return

    # ---------------------------------------------------------------- shutdown (rule 5)

    def hang_up_all(self) -> None:
        """Hang up every call (each is told DISCONNECTED at once)."""
        self.check("hang up")
        for call in list(self._calls):
            call.hangup()

    def close(self, pump_ms: int = 200) -> None:
        """Tear everything down in the safe order and destroy the library (idempotent)."""
        if self.closed:
            return
        self.check("close")
        atexit.unregister(self._close_at_exit)
        try:
            self.hang_up_all()
            for _ in range(max(1, pump_ms // 10)):
                self._ep.libHandleEvents(10)  # the BYEs and CANCELs leave, their answers come in
            for port in reversed(self._ports):
                _delete(port)
            self._ports.clear()
            for call in list(self._calls):
                call._bury()  # never started, or placed while we pumped: detached and hung up by pjsua2
            for account in self._accounts:
                self._delete_account(account)
            self._accounts.clear()
            for tid in self._transports:
                with contextlib.suppress(pj.Error):
                    self._ep.transportClose(tid)
            self._transports.clear()
            # Unreachable cycles holding pj objects are finalized now, here, with the library up,
            # rather than by a later collection on any thread after it is gone.
            gc.collect()
            self._destroy_strays()
        finally:
            self.closed = True
            ep, self._ep = self._ep, None
            try:
                ep.libDestroy()
            except pj.Error as err:
                log.warning("pjsua2 did not shut down cleanly", error=str(translate("libDestroy", err)))
            del ep  # ~Endpoint (a no-op libDestroy) now: a later UserAgent may create the library again

    def _destroy_strays(self) -> None:
        # Anything still owned by Python would run its destructor after libDestroy and abort.
        kinds = (*_PORT_TYPES, pj.Call, pj.Account)
        strays = [obj for obj in gc.get_objects() if issubclass(type(obj), kinds) and _owned(obj)]
        # Ports first (calls' streams feed them), then calls, then the accounts they refer to.
        strays.sort(key=lambda obj: 2 if isinstance(obj, pj.Account) else int(isinstance(obj, pj.Call)))
        for obj in strays:
            log.warning("pjsua2 object left to the collector: destroyed before libDestroy", kind=type(obj).__name__)
            _delete(obj)

    def _close_at_exit(self) -> None:
        if not self.closed and threading.get_ident() == self._owner:
            self.close()


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


class UaAccount(pj.Account):  # type: ignore[misc]
    """A pjsua2 account whose incoming calls are always owned by a SafeCall."""

    def __init__(self, ua: UserAgent) -> None:
        super().__init__()
        self.ua = ua
        self.removed = False  # deleted from pjsua2: its proxy must not reach the library again

    def set_registration(self, renew: bool) -> None:
        """Register (renew) or unregister now; the answer comes to on_registration."""
        self.ua.check("registration")
        if self.removed:
            raise UserAgentError("registration: the account has been removed")
        try:
            self.setRegistration(renew)
        except pj.Error as err:
            raise translate("registration", err) from err

    def send_message(self, uri: str, text: str, content_type: str = "text/plain") -> None:
        """Send a SIP MESSAGE (pager mode) to uri; its outcome comes to on_message_status."""
        self.ua.check("send a message")
        if self.removed:
            raise UserAgentError("send a message: the account has been removed")
        # pjsua sends an instant message through a buddy; this one lives only on this thread, for this
        # call: pjsua_im_send keeps nothing of it, and it never outlives its account.
        buddy = pj.Buddy()
        try:
            cfg = pj.BuddyConfig()
            cfg.uri, cfg.subscribe = uri, False
            buddy.create(self, cfg)
            prm = pj.SendInstantMessageParam()
            prm.content, prm.contentType = text, content_type
            buddy.sendInstantMessage(prm)
        except pj.Error as err:
            raise translate("send a message", err) from err
        finally:
            _delete(buddy)

    def on_incoming_call(self, call_id: int, message: str, source: str) -> None:
        """An INVITE (message) from source (host:port): make a SafeCall(self, call_id) to take it, else it gets 480."""

    def on_registration(self, code: int, reason: str) -> None:
        """A registration's final status."""

    def on_message(self, sender: str, text: str, content_type: str) -> None:
        """A SIP MESSAGE arrived (pjsua2 has answered it 200)."""

    def on_message_status(self, to: str, code: int, reason: str) -> None:
        """The final answer to a MESSAGE this account sent."""

    def onInstantMessage(self, prm: Any) -> None:  # noqa: N802 - pjsua2 callback name
        """Forward an incoming MESSAGE."""
        try:
            self.on_message(str(prm.fromUri), str(prm.msgBody), str(prm.contentType))
        except Exception:
            log.exception("account hook failed", hook="message")

    def onInstantMessageStatus(self, prm: Any) -> None:  # noqa: N802
        """Forward the outcome of a MESSAGE sent."""
        try:
            self.on_message_status(str(prm.toUri), int(prm.code), str(prm.reason))
        except Exception:
            log.exception("account hook failed", hook="message status")

    def onRegState(self, prm: Any) -> None:  # noqa: N802 - pjsua2 callback name
        """Forward the registration status."""
        try:
            self.on_registration(int(prm.code), str(prm.reason))
        except Exception:
            log.exception("account hook failed", hook="registration")

    def onIncomingCall(self, prm: Any) -> None:  # noqa: N802
        """Hand the call to on_incoming_call; refuse it if nobody took it, or the hook failed."""
        call_id = int(prm.callId)
        failed = False
        try:
            self.on_incoming_call(call_id, str(prm.rdata.wholeMsg), str(prm.rdata.srcAddress))
        except Exception:
            log.exception("account hook failed", hook="incoming call")
            failed = True
        owner = self.ua._claims.pop(call_id, None)
        if owner is None:
            # A call without a Call object would ring unowned until its caller gives up.
            SafeCall(self, call_id).hangup(480)
            self.ua._claims.pop(call_id, None)
        elif failed:
            owner.hangup(500)
