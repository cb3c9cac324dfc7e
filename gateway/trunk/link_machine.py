"""The modem link: brings the modem up, keeps it registered, and recovers it when it stops answering.

One explicit state machine (`LinkState`, one `_set_state` that logs old → new with the reason), a
step per state, and a recovery ladder: AT+CFUN=1,1 → wait for USB re-enumeration → USB reset →
fresh bring-up. `Modem` (driver.py) adds calls, SMS and audio on top of it.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import datetime as dt
import time

import structlog

from gateway.listeners import Listeners
from gateway.trunk import at, registration
from gateway.trunk.at_channel import AtChannel
from gateway.trunk.audio_stream import AudioStream
from gateway.trunk.call import CallEvent, CallState, CallTracker
from gateway.trunk.errors import CommandTimeoutError, PortGoneError, TrunkError
from gateway.trunk.link import LIMITED_SERVICE, LinkState, ModemSettings, ModemStatus, NoUsbReset, UsbReset
from gateway.trunk.ports import ModemPorts, PortFinder
from gateway.trunk.profiles import Family, Profile, gain_commands
from gateway.trunk.recovery import RecoveryLadder
from gateway.trunk.serialport import SerialPort

_DEFAULT_SETTINGS = ModemSettings()


class ModemLink(RecoveryLadder):
    """One modem's link state machine, its AT channel and its audio stream; calls are the subclass's."""

    def __init__(
        self,
        profile: Profile,
        finder: PortFinder,
        settings: ModemSettings = _DEFAULT_SETTINGS,
        usb_reset: UsbReset | None = None,
    ) -> None:
        self.profile = profile
        self.finder = finder
        self.settings = settings
        self.timeouts = settings.timeouts
        self.usb_reset = usb_reset or NoUsbReset()
        # ValueError now, for a gain the family cannot take (the config already refuses those).
        self._gains = gain_commands(profile, settings.mic_gain, settings.speaker_gain)
        self.log = structlog.get_logger("trunk.modem").bind(modem=settings.name, family=profile.family.value)
        self.status = ModemStatus()
        self.tracker = CallTracker(profile.family)
        self.ports: ModemPorts | None = None
        self.channel = AtChannel(self.timeouts, self.log, self._on_urc)
        self.audio = AudioStream(
            profile,
            self.timeouts,
            self.status,
            self.tracker,
            self.channel,
            self.log,
            on_dtmf=self._emit_dtmf,
            on_busy=lambda: self._emit_call(self.tracker.feed(at.Urc("BUSY"))),
        )
        self._gone = asyncio.Event()
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._pin_refused = False
        self._ladder = 0
        self._needs_reset: str | None = None
        self._needs_creset = False
        self._configured = False  # the family's init (audio included) went to the modem since its port opened
        self.on_state: Listeners[[LinkState, LinkState, str]] = Listeners("modem state")

    @abc.abstractmethod
    def _on_urc(self, urc: at.Urc) -> None:
        """An unsolicited result code from the modem."""

    @abc.abstractmethod
    def _emit_call(self, events: list[CallEvent]) -> None:
        """Tell the call listeners what the call tracker saw."""

    @abc.abstractmethod
    def _emit_dtmf(self, digit: str) -> None:
        """Tell the DTMF listeners about a digit from the far end."""

    async def command(
        self, command: str, limit: float | None = None, *, secret: bool = False, count_timeout: bool = True
    ) -> at.Reply:
        """Send one AT command and wait for its final result (one outstanding at a time)."""
        return await self.channel.command(command, limit, secret=secret, count_timeout=count_timeout)

    async def check(self, command: str) -> at.Reply:
        """A command that must succeed; CommandError otherwise."""
        return await self.channel.check(command)

    # ------------------------------------------------------------------ state machine

    @property
    def state(self) -> LinkState:
        """The link state."""
        return self.status.state

    @property
    def emergency_capable(self) -> bool:
        """Whether an emergency call can be dialled now: READY, or limited service with the audio configured."""
        if self.state is LinkState.READY:
            return True
        # An analog line has no limited service: without READY there is no line to dial on.
        return self.state in LIMITED_SERVICE and self._configured and self.profile.family is not Family.V253

    def _set_state(self, new: LinkState, reason: str) -> None:
        old = self.status.state
        if old is new and reason == self.status.reason:
            return
        self.status.state, self.status.since, self.status.reason = new, time.time(), reason
        if new is LinkState.READY:
            self.status.problem = None
        self.status.emergency_only = self.emergency_capable and new is not LinkState.READY
        self.log.info("modem state", old=old.value, new=new.value, reason=reason)
        self._changed.set()
        self.on_state.emit(old, new, reason)

    def _problem(self, text: str | None) -> None:
        if text != self.status.problem:
            self.status.problem = text
            if text:
                self.log.warning("modem problem", problem=text)

    async def start(self) -> None:
        """Start the link state machine in the background."""
        self._task = asyncio.create_task(self._run(), name=f"modem-{self.settings.name}")

    async def stop(self) -> None:
        """Hang up, close the ports and stop."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._close_ports()

    async def wait_state(self, *states: LinkState) -> None:
        """Wait until the link reaches one of states (wrap in asyncio.timeout)."""
        while self.state not in states:
            self._changed.clear()
            await self._changed.wait()

    async def _run(self) -> None:
        steps = {
            LinkState.ABSENT: self._step_absent,
            LinkState.PROBE: self._step_probe,
            LinkState.SIM: self._step_sim,
            LinkState.CONFIG: self._step_config,
            LinkState.REGISTERING: self._step_registering,
            LinkState.READY: self._step_ready,
            LinkState.RESET: self._step_reset,
        }
        while not self._stopping:
            try:
                await steps[self.state]()
            except PortGoneError as err:
                self._close_ports()
                self._set_state(LinkState.RESET, f"port lost: {err}")
            except CommandTimeoutError as err:
                if self.state is not LinkState.RESET:
                    self._set_state(LinkState.RESET, str(err))
            except TrunkError as err:
                self.log.warning("modem step failed", state=self.state.value, error=str(err))
                await self._sleep(self.timeouts.retry)

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    # ------------------------------------------------------------------ steps

    async def _step_absent(self) -> None:
        ports = await asyncio.to_thread(self.finder.find)
        if ports is None:
            self._problem("modem not found (is it plugged in, through a powered hub?)")
            await self._sleep(self.timeouts.retry)
            return
        self._open_ports(ports)
        self._set_state(LinkState.PROBE, f"ports found: {ports.at}" + (f" + {ports.audio}" if ports.audio else ""))

    async def _step_probe(self) -> None:
        deadline = time.monotonic() + self.timeouts.boot
        while True:
            try:
                reply = await self.command("AT", min(self.timeouts.command, 2.0), count_timeout=False)
                if reply.ok:
                    break
            except CommandTimeoutError:
                pass
            if time.monotonic() > deadline:
                raise CommandTimeoutError(f"no answer to AT within {self.timeouts.boot:.0f} s of the port appearing")
        self.channel.timeouts_in_row = 0
        await self.check("ATE0")
        if self.profile.family is not Family.V253:
            await self.check("AT+CMEE=1")
        self.status.model = _first(await self.command("AT+CGMM"))
        self.status.firmware = _first(await self.command("AT+CGMR"))
        if self.profile.family is not Family.V253:
            self.status.imei = _first(await self.command("AT+CGSN"))
        voice = await self.command(self.profile.voice_check)
        if not voice.ok:
            self._problem(
                f"{self.status.model or 'modem'} has no voice support ({self.profile.voice_check} → {voice.final})"
            )
            await self._sleep(self.timeouts.poll)
            return
        self._set_state(LinkState.CONFIG if self.profile.family is Family.V253 else LinkState.SIM, "modem answers")

    async def _step_sim(self) -> None:
        reply = await self.command("AT+CPIN?")
        if reply.ok:
            sim = at.parse_cpin(reply.line("+CPIN"))
        elif reply.final.code == at.CME_SIM_NOT_INSERTED:
            sim = at.SimState.NOT_INSERTED
        elif reply.final.code == at.CME_SIM_BUSY:
            await self._sleep(self.timeouts.retry / 2)
            return
        else:
            sim = at.SimState.NOT_READY
        if sim is at.SimState.READY:
            self.status.iccid = await self._read_iccid()
            self._set_state(LinkState.CONFIG, "SIM ready")
            return
        if sim is at.SimState.SIM_PIN and self.settings.pin and not self._pin_refused:
            answer = await self.command(f"AT+CPIN={at.quote(self.settings.pin)}", secret=True)
            if answer.ok:
                self.log.info("SIM unlocked")
                return
            if answer.final.code == at.CME_INCORRECT_PASSWORD:
                # Never try a wrong PIN twice: three tries lock the SIM behind its PUK.
                self._pin_refused = True
                self._problem("the SIM refused the configured PIN; not retrying (fix trunk SIM PIN)")
            return
        problems = {
            at.SimState.NOT_INSERTED: "no SIM card",
            at.SimState.SIM_PIN: "SIM needs a PIN and none is configured",
            at.SimState.SIM_PUK: "SIM is PUK-locked (too many wrong PINs)",
        }
        if not (sim is at.SimState.SIM_PIN and self._pin_refused):
            self._problem(problems.get(sim, f"SIM not ready ({sim.value})"))
        if not self._configured:
            # Limited service: with its audio set up the modem can still place emergency calls.
            await self._configure()
            self._set_state(LinkState.SIM, f"{problems.get(sim, sim.value)}: emergency calls only")
        await self._sleep(self.timeouts.retry)

    async def _read_iccid(self) -> str | None:
        return await registration.read_iccid(self.channel, self.profile.family)

    async def _step_config(self) -> None:
        if self.tracker.state is not CallState.IDLE:
            # An emergency call placed in limited service: init commands (audio among them) would
            # disturb it. The SIM came back under it; configure once it has ended.
            await self._sleep(self.timeouts.retry)
            return
        await self._configure()
        if self.profile.family is Family.V253:
            self.status.voice = True
            self._ladder = 0  # up again: the next fault starts at the ladder's first rung
            self._set_state(LinkState.READY, "analog line configured")
            return
        self._set_state(LinkState.REGISTERING, "configured")

    async def _configure(self) -> None:
        for command in self.profile.init:
            reply = await self.command(command)
            if not reply.ok:
                self.log.warning("init command refused", command=command, result=str(reply.final))
        # After the family's init, so nothing in it resets them. A refusal leaves the modem's own gains.
        for command in self._gains:
            reply = await self.command(command)
            if not reply.ok:
                self.log.warning("gain refused; the modem keeps its own", command=command, result=str(reply.final))
        self._configured = True

    async def _step_registering(self) -> None:
        await self._poll()
        if self.status.voice and self.status.operator is None:
            await self._poll()  # registered by a URC in the middle of the poll: read the operator again
        if self.state is not LinkState.REGISTERING:
            return  # a URC during the poll moved the link (the SIM pulled: SIM)
        if self.status.voice:
            self._ladder = 0
            await self._read_clock()
            self._set_state(LinkState.READY, f"registered on {self.status.operator or 'the network'}")
            return
        await self._sleep(self.timeouts.retry)

    async def _step_ready(self) -> None:
        if self._needs_reset and self.tracker.state is CallState.IDLE:
            reason, self._needs_reset = self._needs_reset, None
            self._set_state(LinkState.RESET, reason)
            return
        await self._sleep(self.timeouts.poll)
        if self.state is not LinkState.READY:
            return
        if self.profile.family is Family.V253:
            if self.tracker.state is CallState.IDLE and not self.audio.streaming:
                # An analog modem reports nothing on its own: without this a hung or vanished
                # modem would only be noticed when a call needs it.
                await self.command("AT")
            return
        if self.tracker.state is CallState.IDLE:
            await self._poll()
            await self._read_clock()
        # A URC during the poll may have moved the link (the SIM pulled: SIM); that state stands.
        if self.state is LinkState.READY and not self.status.voice:
            self._set_state(LinkState.REGISTERING, self.status.problem or "registration lost")

    async def _poll(self) -> None:
        await registration.poll(self.channel, self.profile, self.status, self._on_urc)
        self._update_voice()

    def _update_voice(self) -> None:
        self.status.voice, problem = registration.voice(self.status)
        self._problem(problem)

    async def _read_clock(self) -> None:
        await registration.read_clock(self.channel, self.status, self.log)

    def network_time(self) -> dt.datetime | None:
        """Network time now (NITZ via AT+CCLK?, advanced by the monotonic clock), for the CDR clock."""
        return registration.network_time(self.status)

    # ------------------------------------------------------------------ ports

    def _open_ports(self, ports: ModemPorts) -> None:
        self._close_ports()
        self._gone.clear()
        self._configured = False  # a fresh port may be a rebooted modem: its init is gone
        self.audio.streaming = False
        at_port = SerialPort(ports.at, self._on_at_data, self._on_gone)
        at_port.open()
        self.channel.attach(at_port)
        self.audio.reopened()
        if ports.audio is not None:
            audio = SerialPort(ports.audio, self._on_audio_data, self._on_gone)
            audio.open()
            self.audio.port = audio
        self.ports = ports
        self.status.ident = ports.ident

    def _close_ports(self) -> None:
        self.audio.close()
        self.channel.close()

    def _on_gone(self, why: str) -> None:
        self.log.warning("modem port gone", why=why)
        self._gone.set()
        self.channel.fail(why)
        self._wake.set()
        if self.state not in (LinkState.RESET, LinkState.ABSENT):
            self._emit_call(self.tracker.line_lost())

    def _on_at_data(self, data: bytes) -> None:
        if self.audio.streaming:
            self.audio.on_stream(data)
        else:
            self.channel.feed(data)

    def _on_audio_data(self, data: bytes) -> None:
        self.audio.on_audio_data(data)


def _first(reply: at.Reply) -> str | None:
    return reply.lines[0] if reply.ok and reply.lines else None
