"""The agent's control API for the daemon: HTTP on a unix socket (status, SMS, the event stream, ring)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncGenerator
from typing import Any

import structlog

from gateway.errors import UserAgentError
from gateway.trunk.agent.events import EventKind
from gateway.trunk.agent.http import Answer, Request, Server, Stream
from gateway.trunk.agent.plumbing import CallPlumbing
from gateway.trunk.errors import TrunkError
from gateway.trunk.link import LinkState

log = structlog.get_logger("trunk.agent")

KEEPALIVE_S = 5.0  # a line at least this often on the event stream; the daemon gives up on a silent one after 15 s


class ControlApi:
    """The daemon's view of the agent and its requests to it."""

    def __init__(self, agent: CallPlumbing) -> None:
        self.agent = agent
        self._server: Server | None = None

    def status(self) -> dict[str, Any]:
        """What the daemon shows about the trunk."""
        return {
            "registered": self.agent.account.reg_code if self.agent.account else 0,
            "extension": self.agent.secrets.auth_user,
            "minutes_today": round(self.agent.ledger.minutes_today(), 1),
            "modems": [
                {
                    "name": s.name,
                    "family": s.modem.profile.family.value,
                    **s.modem.status.as_dict(),
                    "iccid": s.modem.status.iccid,
                    # The network's time now (NITZ, advanced since it was read): the call records' clock.
                    "network_now": _epoch(s.modem.network_time()),
                }
                for s in self.agent.slots
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
                for c in self.agent.calls.values()
            ],
        }

    async def send_sms(self, numbers: list[str], text: str) -> dict[str, str]:
        """Send text to each number through the first ready modem; per-number result."""
        results: dict[str, str] = {}
        for number in numbers:
            # A free modem first: an SMS during a call works but waits behind the call's commands.
            ready = sorted((s for s in self.agent.slots if s.link is LinkState.READY), key=lambda s: s.busy)
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
        s = self.agent.secrets
        for extension in extensions:
            if self.agent.account is None or not re.fullmatch(r"\+?[0-9*#]{1,32}", extension):
                results[extension] = "not an extension" if self.agent.account else "no SIP account"
                continue
            try:
                self.agent.account.send_message(f"sip:{extension}@{s.sip_host}:{s.sip_port}", text)
                results[extension] = "sent"
            except UserAgentError as err:
                results[extension] = str(err)
        log.info("messages sent", results=results)
        return results

    async def _stream_events(self, request: Request) -> Answer | Stream:
        """GET /events?boot=B&since=N: JSON lines, the events after N (all kept ones when B is not this agent's)."""
        events = self.agent.events
        try:
            since = int(request.query.get("since", "0")) if request.query.get("boot") == events.boot else 0
        except ValueError:
            return Answer({"error": "since must be an event number"}, 400)
        kept = events.after(0)
        if since and kept and kept[0]["seq"] > since + 1:
            log.warning("events lost to the daemon: it was too far behind", missed=kept[0]["seq"] - since - 1)

        async def lines(since: int) -> AsyncGenerator[dict[str, Any], None]:
            # The daemon going away ends the stream at a write (the server closes this generator): it
            # reconnects with its cursor.
            yield {"kind": EventKind.HELLO.value, "boot": events.boot, "seq": since}
            while not events.closed:
                news = await events.wait(since, KEEPALIVE_S)
                for event in news:
                    yield event
                    since = event["seq"]
                if not news and not events.closed:
                    yield {"kind": EventKind.KEEPALIVE.value, "seq": since}

        return Stream(lines(since))

    async def start(self) -> None:
        """Serve the API on the control socket (mode 0600)."""

        async def get_status(request: Request) -> Answer:
            return Answer(self.status())

        async def post_sms(request: Request) -> Answer:
            body = request.json_object()
            numbers, text = body.get("numbers"), body.get("text")
            if not isinstance(numbers, list) or not isinstance(text, str) or not text:
                return Answer({"error": "numbers (list) and text (string) are required"}, 400)
            return Answer({"results": await self.send_sms([str(n) for n in numbers], text)})

        async def post_message(request: Request) -> Answer:
            body = request.json_object()
            to, text = body.get("to"), body.get("text")
            if not isinstance(to, list) or not isinstance(text, str) or not text:
                return Answer({"error": "to (list of extensions) and text are required"}, 400)
            return Answer({"results": self.send_message([str(t) for t in to], text)})

        async def post_ring(request: Request) -> Answer:
            # emergency.ring: the daemon asks once the emergency call's dial is under way (gateway/trunk/alerting.py).
            body = request.json_object()
            to, display, caller, ring_s = body.get("to"), body.get("display"), body.get("caller"), body.get("ring_s")
            if not (isinstance(to, list) and isinstance(display, str) and isinstance(caller, str)) or not (
                isinstance(ring_s, int | float) and 1 <= ring_s <= 300
            ):
                return Answer({"error": "to (list), display, caller and ring_s (1-300) are required"}, 400)
            if self.agent.ringer is None:
                return Answer({"results": dict.fromkeys(map(str, to), "no SIP account")})
            return Answer({"results": await self.agent.ringer.ring([str(t) for t in to], display, caller, ring_s)})

        server = Server({
            ("GET", "/status"): get_status,
            ("POST", "/sms"): post_sms,
            ("GET", "/events"): self._stream_events,
            ("POST", "/message"): post_message,
            ("POST", "/ring"): post_ring,
        })  # fmt: skip
        await server.start(self.agent.secrets.control_socket)
        self._server = server

    async def stop(self) -> None:
        """Close the socket; requests in flight get a short grace."""
        if self._server is not None:
            # The daemon's event stream would hold the stop for its whole grace: end it now.
            self.agent.events.close()
            await self._server.stop(grace_s=2.0)


def _epoch(when: dt.datetime | None) -> float | None:
    return when.timestamp() if when is not None else None
