"""The agent's pjsua2 classes: its account at Kamailio and its call legs, forwarding to the agent."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pjsua2 as pj
import structlog

from gateway.pjsafe import SafeCall, UaAccount, UserAgent

if TYPE_CHECKING:
    from gateway.trunk.agent.model import TrunkCall
    from gateway.trunk.agent.routing import CallRouting

log = structlog.get_logger("trunk.agent")


class Leg(SafeCall):
    """One SIP call of the agent; forwards its callbacks to the agent (on the pump's thread).

    gateway.pjsafe keeps it alive until it ends and makes every operation on it safe afterwards.
    """

    def __init__(self, agent: CallRouting, account: Account, call_id: int = pj.PJSUA_INVALID_ID) -> None:
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

    def __init__(self, agent: CallRouting, ua: UserAgent) -> None:
        super().__init__(ua)
        self.agent = agent
        self.reg_code = 0

    def on_registration(self, code: int, reason: str) -> None:
        """Remember the registration's status."""
        self.reg_code = code
        log.info("registration", code=code, reason=reason)

    def on_message_status(self, to: str, code: int, reason: str) -> None:
        """Log how a notification MESSAGE fared."""
        log.info("message delivered" if code // 100 == 2 else "message not delivered", to=uri_user(to), code=code)

    def on_incoming_call(self, call_id: int, message: str, source: str) -> None:
        """An INVITE from Kamailio: a phone dialled an external number."""
        self.agent.on_invite(Leg(self.agent, self, call_id), message, source)


def request_user(message: str) -> str:
    """The user part of an INVITE's Request-URI: the number dialled."""
    first = message.split("\r\n", 1)[0]
    found = re.match(r"INVITE\s+sips?:([^@;>\s]+)@", first)
    return found.group(1) if found else ""


def uri_user(uri: str) -> str:
    """The user part of a SIP URI or name-addr."""
    # The URI of a name-addr, never a "sip:…@" inside its display name.
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', "", uri)
    inner = re.search(r"<([^>]*)>", bare)
    found = re.match(r"\s*sips?:([^@;>\s]+)@", inner.group(1) if inner else bare)
    return found.group(1) if found else ""
