"""The process's pjsua2 library (UserAgent): created, pumped and destroyed in order by its owner thread."""

from __future__ import annotations

import atexit
import contextlib
import gc
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import pjsua2 as pj
import structlog

from gateway.errors import UserAgentError
from gateway.pjsafe.native import _PORT_TYPES, _delete, _owned, translate

if TYPE_CHECKING:
    from gateway.pjsafe.account import UaAccount
    from gateway.pjsafe.call import SafeCall

log = structlog.get_logger("pjsafe")

P = TypeVar("P")


class UserAgent:
    """The process's pjsua2 library, owned by the thread that creates it; see gateway.pjsafe's rules."""

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
