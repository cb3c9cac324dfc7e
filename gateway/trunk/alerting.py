"""Ringing the people responsible the moment an emergency number is dialled (`emergency.ring`).

Many desk phones never show a SIP MESSAGE; every phone rings. The daemon asks (POST /ring) once the
agent has reported the dial under way, so nothing here comes before or in the way of the emergency
call. Each extension is called through Kamailio, all at once, in the caller's name: the From display
name says what happened (`EMERGENCY 112: 1001 Alice Example, Floor 2 Room 204`) and the From user is
the calling extension, so a phone's call history calls that colleague back. Answered: a hi-lo alert
tone for ALERT_S, then Lifeline hangs up. Not answered within ring_s: cancelled. Each phone is on its
own: one answering does not stop the others ringing, since everyone responsible should know.

Runs on the agent's pump thread (the asyncio loop's), like every pjsua2 call of the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import unicodedata
from collections.abc import Callable
from typing import Any

import pjsua2 as pj
import structlog

from gateway.errors import UserAgentError
from gateway.pjsafe import SafeCall, UaAccount

log = structlog.get_logger("trunk.alerting")

ALERT_TONE = ((1300, 250), (850, 250))  # (Hz, ms) alternating: hi-lo, unlike any ringback, busy or SIT tone
ALERT_HZ = tuple(float(hz) for hz, _ in ALERT_TONE)
ALERT_S = 4.0  # how long an answering phone hears the alert before Lifeline hangs up
DISPLAY_CHARS = 60  # desk phone displays are narrow; the MESSAGE and SMS carry every detail
SETTLE_S = 1.0  # ring() waits this long at most for the phones' first replies, for the notice's results
_EXTENSION = re.compile(r"\+?[0-9*#]{1,32}")
_CALLER = re.compile(r"\+?[0-9]{3,20}")  # what Kamailio lets the agent put in From (route[AUTH])


def display_name(text: str) -> str:
    """text as a quoted SIP display name: printable ASCII (accents dropped), at most DISPLAY_CHARS, escaped."""
    folded = unicodedata.normalize("NFKD", text.replace("ß", "ss")).encode("ascii", "ignore").decode()
    plain = " ".join("".join(c if c.isprintable() else " " for c in folded).split())[:DISPLAY_CHARS].rstrip()
    return '"' + plain.replace("\\", "\\\\").replace('"', '\\"') + '"'


def caller_id(display: str, caller: str, realm: str) -> str:
    """The From of a ring: the display text, and the calling extension as the user (else anonymous)."""
    user = caller if _CALLER.fullmatch(caller) else "anonymous"
    return f"{display_name(display)} <sip:{user}@{realm}>"


class AlertLeg(SafeCall):
    """One rung phone."""

    def __init__(self, ringer: EmergencyRinger, account: UaAccount, extension: str) -> None:
        self.ringer = ringer
        self.extension = extension
        self.reply = ""  # the first reply, for the notice: ringing, answered, or the refusal
        self.replied = asyncio.Event()
        self.answered = False
        self.timer: asyncio.TimerHandle | None = None  # ring_s while ringing, ALERT_S once answered
        self.tone: Any = None
        super().__init__(account)

    def on_state(self, info: Any) -> None:
        """Forward the state change."""
        self.ringer.on_state(self, info)

    def on_media(self) -> None:
        """Play the alert once the audio is up."""
        self.ringer.on_media(self)


class EmergencyRinger:
    """The agent's rings of emergency.ring: started by ring(), each ended by its own timer or the phone."""

    def __init__(self, account: UaAccount, proxy: str, realm: str, clock_rate: int) -> None:
        self.account = account
        self.proxy = proxy  # Kamailio's host:port
        self.realm = realm
        self.clock_rate = clock_rate  # the conference bridge's, for the tone generator
        self.legs: set[AlertLeg] = set()

    async def ring(self, extensions: list[str], display: str, caller: str, ring_s: float) -> dict[str, str]:
        """Ring each extension for up to ring_s; per-extension first reply (within SETTLE_S) or why it could not."""
        loop = asyncio.get_running_loop()
        results: dict[str, str] = {}
        placed: list[AlertLeg] = []
        origin = caller_id(display, caller, self.realm)
        for extension in dict.fromkeys(extensions):
            if not _EXTENSION.fullmatch(extension):
                results[extension] = "not an extension"
                continue
            leg = AlertLeg(self, self.account, extension)
            prm = pj.CallOpParam(True)
            prm.txOption.localUri = origin
            priority = pj.SipHeader()
            priority.hName, priority.hValue = "Priority", "emergency"  # RFC 3261 20.26
            prm.txOption.headers.append(priority)
            try:
                leg.make_call(f"sip:{extension}@{self.proxy}", prm=prm)
            except UserAgentError as err:
                results[extension] = str(err)
                continue
            if not leg.gone:
                self.legs.add(leg)
                leg.timer = loop.call_later(ring_s, self._give_up, leg)
            placed.append(leg)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SETTLE_S):
                for leg in placed:
                    await leg.replied.wait()
        for leg in placed:
            results[leg.extension] = leg.reply or "no reply yet"
        log.info("emergency ring", results=results, ring_s=ring_s)
        return results

    def on_state(self, leg: AlertLeg, info: Any) -> None:
        """Ringing, answered (the alert's time starts) or ended (the outcome logged)."""
        state = info.state
        if state == pj.PJSIP_INV_STATE_EARLY and not leg.reply:
            self._replied(leg, "ringing")
        elif state == pj.PJSIP_INV_STATE_CONFIRMED and not leg.answered:
            leg.answered = True
            self._replied(leg, leg.reply or "answered")
            self._rearm(leg, ALERT_S, leg.hangup)
            log.info("emergency ring answered", extension=leg.extension)
        elif state == pj.PJSIP_INV_STATE_DISCONNECTED:
            if leg.timer is not None:
                leg.timer.cancel()
            self.legs.discard(leg)
            code, reason = int(info.lastStatusCode), str(info.lastReason)
            if not leg.reply:
                self._replied(leg, f"{code} {reason}".strip())
            if leg.answered:
                log.info("emergency ring ended", extension=leg.extension, outcome="answered, alert played")
            else:
                log.warning("emergency ring not answered", extension=leg.extension, code=code, reason=reason)

    def on_media(self, leg: AlertLeg) -> None:
        """The answering phone's audio is up: the alert tone into it (and into a re-INVITE's new stream)."""
        if not leg.has_active_audio():
            return
        try:
            if leg.tone is None:
                leg.tone = leg.attach(self._alert_tone())  # released with the call
            if not leg.linked(leg.tone):
                leg.link(leg.tone, from_call=False)
        except (UserAgentError, pj.Error) as err:
            log.warning("cannot play the emergency alert", extension=leg.extension, error=str(err))

    def _alert_tone(self) -> Any:
        tone = pj.ToneGenerator()
        tone.createToneGenerator(self.clock_rate, 1)
        steps = pj.ToneDescVector()
        for hz, ms in ALERT_TONE:
            desc = pj.ToneDesc()
            desc.freq1, desc.freq2, desc.on_msec, desc.off_msec = hz, 0, ms, 0
            steps.append(desc)
        tone.play(steps, True)
        return tone

    def _replied(self, leg: AlertLeg, reply: str) -> None:
        leg.reply = reply
        leg.replied.set()

    def _give_up(self, leg: AlertLeg) -> None:
        if not leg.answered:
            log.info("emergency ring cancelled: not answered in time", extension=leg.extension)
            leg.hangup()

    def _rearm(self, leg: AlertLeg, after: float, then: Callable[[], object]) -> None:
        if leg.timer is not None:
            leg.timer.cancel()
        leg.timer = asyncio.get_running_loop().call_later(after, then)

    def stop(self) -> None:
        """Cancel the timers (the user agent's close hangs the calls up)."""
        for leg in list(self.legs):
            if leg.timer is not None:
                leg.timer.cancel()
        self.legs.clear()
