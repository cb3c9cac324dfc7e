"""The modem driver: places and takes calls, SMS and DTMF on a modem whose link `ModemLink` keeps up.

The parts: `link` (states, status, settings), `at_channel` (one AT command at a time),
`link_machine` and `recovery` (bring-up, registration, the reset ladder), `registration` (what
the network says), `audio_stream` (PCM frames in and out). `Modem` ties calls to them: URCs feed
`CallTracker`, call events go to listeners, and the call's audio is started and stopped here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from gateway.listeners import Listeners
from gateway.trunk import at, dle
from gateway.trunk.audio_stream import FrameSink
from gateway.trunk.call import CallEvent, CallState, EndReason
from gateway.trunk.errors import CommandError, TrunkError
from gateway.trunk.link import LIMITED_SERVICE, LinkState, ModemSettings, UsbReset
from gateway.trunk.link_machine import ModemLink
from gateway.trunk.ports import PortFinder
from gateway.trunk.profiles import AudioStart, Family, Profile

_DEFAULT_SETTINGS = ModemSettings()


class Modem(ModemLink):
    """One modem: the link (`ModemLink`) plus calls, SMS, DTMF and the call's audio frames."""

    def __init__(
        self,
        profile: Profile,
        finder: PortFinder,
        settings: ModemSettings = _DEFAULT_SETTINGS,
        usb_reset: UsbReset | None = None,
    ) -> None:
        super().__init__(profile, finder, settings, usb_reset)
        self._orig = asyncio.Event()  # Huawei ^ORIG seen for the call being dialled
        self._audio_task: asyncio.Task[bool] | None = None  # the current call's audio command (per-call families)
        self._active_at: float | None = None  # when the current call was answered
        self.on_call: Listeners[[CallEvent]] = Listeners("modem call")
        self.on_dtmf: Listeners[[str]] = Listeners("modem dtmf")
        self.on_sms: Listeners[[at.Sms]] = Listeners("modem sms")

    @property
    def frame_sink(self) -> FrameSink | None:
        """Where the modem's 20 ms frames go during a call."""
        return self.audio.frame_sink

    @frame_sink.setter
    def frame_sink(self, sink: FrameSink | None) -> None:
        self.audio.frame_sink = sink

    @property
    def streaming(self) -> bool:
        """Whether a V.253 voice stream is running on the AT port."""
        return self.audio.streaming

    @property
    def last_frame_at(self) -> float:
        """time.monotonic() of the last frame from the modem (0 when none this call)."""
        return self.audio.last_frame_at

    # ------------------------------------------------------------------ URCs and call events

    def _on_urc(self, urc: at.Urc) -> None:
        name = urc.name
        self.log.debug("urc", line=urc.line)
        try:
            self._emit_call(self.tracker.feed(urc))
            if name in ("+CREG", "+CEREG"):
                reg = at.parse_creg(urc.line, solicited=False)
                if name == "+CREG":
                    self.status.cs = reg
                else:
                    self.status.eps = reg
                self._update_voice()
                self._wake.set()
            elif name == "+CPIN" and self.state in (LinkState.READY, LinkState.REGISTERING, LinkState.CONFIG):
                sim = at.parse_cpin(urc.line)
                if sim is not at.SimState.READY:
                    # Without a SIM there is no operator either: the status page must not show one.
                    self.status.voice, self.status.operator = False, None
                    self._set_state(LinkState.SIM, f"SIM state changed: {sim.value}")
            elif name == "+CPIN" and self.state is LinkState.SIM:
                self._wake.set()  # the SIM is back (or asks for its PIN): look now, not a retry later
            elif name == "+CMT" and urc.extra:
                sms = at.parse_cmt(urc.line, urc.extra[0])
                self.on_sms.emit(sms)
            elif name == "+CMTI":
                indication = at.parse_cmti(urc.line)
                asyncio.get_running_loop().create_task(self._read_sms(indication))
            elif name == "^ORIG":
                self._orig.set()
                if self.profile.early_audio and self.profile.audio_start is AudioStart.PER_CALL:
                    self._audio_soon()  # the call exists now: its downlink (ringback) can flow
            elif name == "+QTONEDET":
                self._emit_dtmf(chr(int(urc.line.split(":", 1)[1])))
            elif name == "+RXDTMF":
                self._emit_dtmf(urc.line.split(":", 1)[1].strip())
        except ValueError as err:
            self.log.warning("unparsable URC", line=urc.line, error=str(err))

    def _emit_call(self, events: list[CallEvent]) -> None:
        for event in events:
            self.status.call = self.tracker.state
            self.log.info("call", state=event.state.value, reason=event.reason and event.reason.value)
            if event.state is CallState.ACTIVE:
                self._active_at = time.monotonic()
            if event.state is CallState.ACTIVE and self.profile.audio_start is not AudioStart.AT_INIT:
                self._audio_soon()
            if event.state is CallState.ENDED:
                streaming, self.audio.streaming = self.audio.streaming, False
                self._check_stream_at_end()
                if self._needs_reset:
                    self._wake.set()  # reset now that the line is free, not a poll later
                self.audio.call_ended()
                self._audio_task = None
                if self.profile.audio_off and self.state in _CALL_STATES:
                    asyncio.get_running_loop().create_task(self._quiet(self.profile.audio_off))
                if (
                    self.profile.family is Family.V253
                    and event.reason not in (EndReason.LOCAL, EndReason.LINE_LOST)
                    and self.state is LinkState.READY
                ):
                    asyncio.get_running_loop().create_task(self._analog_on_hook(streaming))
            self.on_call.emit(event)

    def _emit_dtmf(self, digit: str) -> None:
        self.on_dtmf.emit(digit)

    def _check_stream_at_end(self) -> None:
        # The next call's first frame must not count as a stall of this one: forget this call's clock.
        active_at, last = self._active_at, self.audio.last_frame_at
        self._active_at, self.audio.last_frame_at = None, 0.0
        if active_at is None or self.state is not LinkState.READY or self._gone.is_set():
            return  # never answered, or ended by the link going away (whose reset cures it anyway)
        silent = time.monotonic() - max(active_at, last)
        if silent <= 5 * self.timeouts.frame_gap:
            return
        # Field note 2: a PCM stream that stopped and never came back (no or one-way audio) stays
        # stopped for the next call too; only a reset of the modem brings it back.
        self.status.stalls += 1
        self.log.warning("PCM stream dead at the end of the call", silent_s=round(silent, 2))
        self._needs_reset = self._needs_reset or f"no audio from the modem for the last {silent:.1f} s of the call"

    async def _analog_on_hook(self, streaming: bool) -> None:
        # The far end hung up (busy tone) or the dial failed: an analog modem keeps streaming and
        # the line stays seized until we end the stream and hang up, so the next call finds it busy.
        async with self.channel.lock:  # nothing (a new call's AT+VLS=1) may come between the two
            with contextlib.suppress(TrunkError):
                if streaming and self.channel.port is not None:
                    self.channel.write(dle.HOST_END_RX_CONEXANT + dle.HOST_END_TX)
                    await asyncio.sleep(0.05)  # the modem's <DLE><ETX> OK, before the next command
                await self.channel.exchange(self.profile.hangup)

    async def _quiet(self, command: str) -> None:
        with contextlib.suppress(TrunkError):
            await self.command(command)

    async def _read_sms(self, indication: at.SmsIndication) -> None:
        with contextlib.suppress(TrunkError):
            reply = await self.command(f"AT+CMGR={indication.index}")
            if reply.ok:
                sms = at.parse_cmgr(reply.lines)
                self.on_sms.emit(sms)
                await self.command(f"AT+CMGD={indication.index}")  # a full SIM stops new-SMS URCs

    # ------------------------------------------------------------------ calls

    async def dial(self, number: str, *, emergency: bool = False) -> None:
        """Place a voice call; progress arrives as call events. CommandError if the modem refuses.

        emergency: the number is an emergency number, which a modem in limited service still dials.
        """
        if not (self.state is LinkState.READY or (emergency and self.emergency_capable)):
            raise TrunkError(f"modem not ready ({self.state.value}: {self.status.problem or self.status.reason})")
        if not number or any(c not in "+0123456789*#" for c in number):
            raise ValueError(f"not a dialable number: {number!r}")
        self._orig.clear()
        self._emit_call(self.tracker.dialing(number))
        dial = f"ATDT{number};" if self.profile.family is Family.V253 else f"ATD{number};"
        if self.profile.family is Family.V253:
            await self.check("AT+VLS=1")
        reply = await self.command(dial)
        self._emit_call(self.tracker.dial_result(reply.final))
        if self.profile.family is Family.V253 and reply.ok:
            self._emit_call(self.tracker.answered())  # an analog line cannot tell when the far end answers
        if not reply.ok:
            raise CommandError(dial, str(reply.final))

    async def answer(self) -> None:
        """Answer the ringing call."""
        command = "AT+VLS=1" if self.profile.family is Family.V253 else "ATA"
        await self.check(command)
        self._emit_call(self.tracker.answered())

    async def hang_up(self) -> None:
        """End the call (our side)."""
        if self.audio.streaming and self.channel.port is not None:
            self.audio.streaming = False
            self.channel.write(dle.HOST_END_RX_CONEXANT + dle.HOST_END_TX)
            await asyncio.sleep(0.05)
        if self.tracker.state is CallState.IDLE:
            return
        if self.profile.family is Family.HUAWEI and self.tracker.state is CallState.DIALING:
            # Field note: AT+CHUP before ^ORIG can wedge the dongle; wait for ^ORIG first (briefly).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.timeouts.command):
                    await self._orig.wait()
        self.tracker.hanging_up()
        await self.command(self.profile.hangup)
        self._emit_call(self.tracker.hung_up())

    async def send_dtmf(self, digit: str) -> None:
        """Send one DTMF digit to the far end."""
        if digit not in dle.DTMF_DIGITS:
            raise ValueError(f"not a DTMF digit: {digit!r}")
        if self.profile.family is Family.V253:
            return  # in-band: the bridge's audio carries it
        await self.check(f"AT+VTS={digit}")

    async def send_sms(self, number: str, text: str) -> None:
        """Send a text-mode SMS (AT+CMGF=1 is part of the init); CommandError if refused."""
        if self.state is not LinkState.READY:
            raise TrunkError(f"modem not ready ({self.state.value})")
        plain = text.translate(_SMS_PLAIN)  # the GSM alphabet has no arrows or typographic quotes
        body = plain.encode("latin-1", errors="replace")[:160].replace(b"\x1a", b"?")
        command = f"AT+CMGS={at.quote(number)}"
        async with self.channel.lock:  # the prompt and the text belong together: no command in between
            prompt = await self.channel.exchange(command)
            if prompt.final.kind is not at.FinalKind.PROMPT:
                raise CommandError(command, str(prompt.final))
            reply = await self.channel.exchange("AT+CMGS", payload=body + b"\x1a")
        if not reply.ok:
            raise CommandError(command, str(reply.final))

    # ------------------------------------------------------------------ audio

    def _audio_soon(self) -> None:
        # Once per call: at ^ORIG on a family with early audio, at the answer otherwise, and at
        # the answer again if the early command was refused.
        previous = self._audio_task
        self._audio_task = asyncio.get_running_loop().create_task(self._audio_once(previous))

    async def _audio_once(self, previous: asyncio.Task[bool] | None) -> bool:
        try:
            if previous is not None and await previous:
                return True
            return await self._start_audio()
        except TrunkError as err:
            self.log.warning("audio command failed", error=str(err))
            return False

    async def _start_audio(self) -> bool:
        if self.profile.audio_start is AudioStart.STREAM:
            reply = await self.command(self.profile.audio_on or "AT+VTR")
            if reply.final.kind is at.FinalKind.CONNECT:
                self.audio.start_stream()
            return self.audio.streaming
        if self.profile.audio_on is None:
            return True
        reply = await self.command(self.profile.audio_on)
        if reply.ok:
            return True
        if self.profile.family is Family.SIMCOM:
            # Field note 4: a first CPCMREG=1 ERROR predicts degraded PCM that only AT+CRESET cures.
            self.log.warning("CPCMREG=1 answered ERROR: retrying, and resetting the modem after this call")
            self._needs_reset = "AT+CPCMREG=1 answered ERROR (PCM degrades until AT+CRESET)"
            self._needs_creset = True
            return (await self.command(self.profile.audio_on)).ok
        return False

    def write_frame(self, frame: bytes) -> None:
        """Send one 20 ms S16LE frame (at profile.sample_rate) to the modem (dropped if the port cannot take it now)."""
        self.audio.write_frame(frame)


# Where a call may have been up: CONFIG too, when the SIM came back under an emergency call.
_CALL_STATES = (LinkState.READY, LinkState.CONFIG, *LIMITED_SERVICE)

_SMS_PLAIN = str.maketrans(
    {"→": "->", "←": "<-", "–": "-", "—": "-", "“": '"', "”": '"', "‘": "'", "’": "'", "…": "..."}
)
