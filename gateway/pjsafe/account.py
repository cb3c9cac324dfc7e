"""A pjsua2 account (UaAccount) whose incoming calls are always owned by a SafeCall."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pjsua2 as pj
import structlog

from gateway.errors import UserAgentError
from gateway.pjsafe.call import SafeCall
from gateway.pjsafe.native import _delete, translate

if TYPE_CHECKING:
    from gateway.pjsafe.endpoint import UserAgent

log = structlog.get_logger("pjsafe")


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
