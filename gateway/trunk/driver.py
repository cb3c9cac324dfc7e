"""The modem driver: finds the ports, brings the modem up, keeps it registered, places and takes calls.

One explicit link state machine (`LinkState`, one `_set_state`), one outstanding AT command at a
time, per-command timeouts, and a recovery ladder: AT+CFUN=1,1 → wait for USB re-enumeration →
USB reset → fresh bring-up. Calls are followed by `CallTracker`; PCM frames go to a sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import structlog

from gateway.trunk import at, dle
from gateway.trunk.align import FrameAligner
from gateway.trunk.call import CallEvent, CallState, CallTracker, EndReason
from gateway.trunk.errors import CommandError, CommandTimeoutError, PortGoneError, TrunkError
from gateway.trunk.ports import ModemPorts, PortFinder
from gateway.trunk.profiles import AudioStart, Family, Profile, gain_commands
from gateway.trunk.serialport import SerialPort


class LinkState(enum.StrEnum):
    """Where the modem link is."""

    ABSENT = "absent"  # no ports found
    PROBE = "probe"  # ports open, waiting for AT → OK, identifying
    SIM = "sim"  # SIM locked, missing or busy
    CONFIG = "config"  # sending the family's init commands
    REGISTERING = "registering"  # waiting for a network that can carry calls
    READY = "ready"
    RESET = "reset"  # recovery ladder in progress


# Limited service (3GPP TS 22.101 §10.1): a modem that answers AT places emergency calls whatever its
# SIM (none, PIN or PUK locked) or registration (searching, denied: +CREG: 3), on any cell it can camp
# on. These are the states in which it still may, once its audio is configured.
LIMITED_SERVICE = frozenset({LinkState.SIM, LinkState.REGISTERING})


@dataclass(frozen=True)
class Timeouts:
    """How long to wait for things (seconds). Tests shrink them; ATD/ATA stay generous."""

    command: float = 5.0
    call: float = 20.0  # ATD/ATA/SMS: real modems take seconds; a short timeout causes reset loops (≥ 10 s)
    boot: float = 30.0  # from ports appearing to AT → OK
    port_drop: float = 15.0  # from AT+CFUN=1,1 → OK to the port going away
    reenumerate: float = 60.0  # from the port going away to it coming back
    poll: float = 30.0  # signal / registration / clock refresh while READY
    retry: float = 5.0  # between looks for ports, SIM and registration checks
    frame_gap: float = 0.2  # no PCM for this long in an active call counts as a stall

    def for_command(self, command: str) -> float:
        """The timeout of one command: long for dialling, answering and SMS."""
        upper = command.upper()
        if upper.startswith(("ATD", "ATA", "AT+CMGS", "AT+COPS=")):
            return self.call
        if upper.startswith(("AT+CFUN=", "AT+CRESET")):
            return self.port_drop
        return self.command

    def scaled(self, factor: float) -> Timeouts:
        """All timeouts multiplied by factor (for simulated modems with scaled delays)."""
        return Timeouts(**{k: v * factor for k, v in self.__dict__.items()})


class UsbReset(Protocol):
    """The last rung of the ladder: reset (or power-cycle) the modem's USB device."""

    async def reset(self, ports: ModemPorts | None) -> bool:
        """Reset the device; False when this installation cannot."""
        ...


class NoUsbReset:
    """An installation with no way to power-cycle the modem (no uhubctl-capable hub)."""

    async def reset(self, ports: ModemPorts | None) -> bool:
        """Cannot reset: says so."""
        return False


@dataclass
class ModemStatus:
    """What `lifeline status` shows about one modem."""

    state: LinkState = LinkState.ABSENT
    since: float = field(default_factory=time.time)
    reason: str = "starting"
    problem: str | None = None
    ident: str | None = None
    model: str | None = None
    firmware: str | None = None
    imei: str | None = None
    iccid: str | None = None  # the SIM card's serial: what a carrier's bill names
    operator: str | None = None
    signal: at.Signal | None = None
    cs: at.Registration | None = None
    eps: at.Registration | None = None
    ims: bool | None = None
    voice: bool = False
    call: CallState = CallState.IDLE
    resets: int = 0
    stalls: int = 0
    realignments: int = 0  # PCM sample alignment found again from the audio after lost bytes
    network_time: dt.datetime | None = None
    network_time_at: float | None = None  # time.monotonic() when read
    emergency_only: bool = False  # limited service: no usable SIM or registration, emergency calls still go

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "state": self.state.value,
            "since": self.since,
            "reason": self.reason,
            "problem": self.problem,
            "ident": self.ident,
            "model": self.model,
            "firmware": self.firmware,
            "operator": self.operator,
            "signal": None
            if self.signal is None
            else {"rssi": self.signal.rssi, "dbm": self.signal.dbm, "bars": self.signal.bars},
            "registered": self.voice,
            "access": None if self.eps is None or self.eps.act is None else self.eps.act.name,
            "call": self.call.value,
            "resets": self.resets,
            "stalls": self.stalls,
            "realignments": self.realignments,
            "emergency_only": self.emergency_only,
            "network_time": self.network_time.isoformat() if self.network_time else None,
        }


@dataclass(frozen=True)
class ModemSettings:
    """Per-modem settings from the config."""

    name: str = "modem0"
    pin: str | None = None  # never logged
    timeouts: Timeouts = Timeouts()
    mic_gain: int | None = None  # in the family's units (profiles.Gain); None leaves the modem's own
    speaker_gain: int | None = None


CallListener = Callable[[CallEvent], None]
FrameSink = Callable[[bytes], None]


class Modem:
    """One modem: the link state machine, AT command channel, calls, audio frames."""

    def __init__(
        self,
        profile: Profile,
        finder: PortFinder,
        settings: ModemSettings = ModemSettings(),
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
        self._at: SerialPort | None = None
        self._audio: SerialPort | None = None
        self._splitter = at.LineSplitter()
        self._router = at.AtRouter()
        self._reply: asyncio.Future[at.Reply] | None = None
        self._lock = asyncio.Lock()
        self._gone = asyncio.Event()
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._orig = asyncio.Event()  # Huawei ^ORIG seen for the call being dialled
        self._audio_task: asyncio.Task[bool] | None = None  # the current call's audio command (per-call families)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._pin_refused = False
        self._timeouts_in_row = 0
        self._ladder = 0
        self._needs_reset: str | None = None
        self._needs_creset = False
        self._configured = False  # the family's init (audio included) went to the modem since its port opened
        self._audio_buf = bytearray()  # V.253: decoded stream samples not yet a whole frame
        self._audio_pos = 0  # bytes read from the audio port since it opened (sample alignment)
        self._aligner = FrameAligner(profile.frame_bytes)
        self._uplink_tail = b""  # the part of a frame the audio port did not take yet
        self._chunk_bytes = 0  # the size of the read being cut into frames (a stall vs. a late read)
        self._stream = dle.DleDecoder()
        self.streaming = False
        self.last_frame_at = 0.0
        self._active_at: float | None = None  # when the current call was answered
        self.call_listeners: list[CallListener] = []
        self.dtmf_listeners: list[Callable[[str], None]] = []
        self.sms_listeners: list[Callable[[at.Sms], None]] = []
        self.state_listeners: list[Callable[[LinkState, LinkState, str], None]] = []
        self.frame_sink: FrameSink | None = None

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
        for listener in list(self.state_listeners):
            listener(old, new, reason)

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
        self._timeouts_in_row = 0
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
        # Each family has its own command (Quectel answers +QCCID, SIMCom +CICCID → +ICCID, the rest +CCID).
        command = _ICCID_COMMANDS.get(self.profile.family)
        if command is None:
            return None
        reply = await self.command(command)
        for line in reply.lines if reply.ok else ():
            value = line.split(":", 1)[-1].strip().strip('"')
            if value.isdigit() or (value[:-1].isdigit() and value[-1:] in "Ff"):
                return value
        return None

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
            if self.tracker.state is CallState.IDLE and not self.streaming:
                # An analog modem reports nothing on its own: without this a hung or vanished
                # modem would only be noticed when a call needs it.
                await self.command("AT")
            return
        if self.tracker.state is CallState.IDLE:
            await self._poll()
            await self._read_clock()
        if not self.status.voice:
            self._set_state(LinkState.REGISTERING, self.status.problem or "registration lost")

    async def _poll(self) -> None:
        for command in self.profile.poll:
            reply = await self.command(command)
            if reply.ok:
                for line in reply.lines:
                    self._poll_line(line)
        cs, eps = self.status.cs, self.status.eps
        lte = eps is not None and eps.stat.registered
        if lte and not (cs is not None and cs.stat.registered):
            ims = await self.command("AT+CIREG?")
            self.status.ims = ims.ok and bool(ims.lines) and at.split_fields(ims.lines[0].split(":", 1)[1])[-1] == "1"
        self._update_voice()

    def _poll_line(self, line: str) -> None:
        name = at.urc_name(line)
        if name in ("+CREG", "+CEREG") and not at.is_creg_read(line):
            self._on_urc(at.Urc(line))  # a registration URC that arrived inside the reply
            return
        if name == "+CSQ":
            self.status.signal = at.parse_csq(line)
        elif name == "+CREG":
            self.status.cs = at.parse_creg(line, solicited=True)
        elif name == "+CEREG":
            self.status.eps = at.parse_creg(line, solicited=True)
        elif name == "+COPS":
            self.status.operator = at.parse_cops(line).name

    def _update_voice(self) -> None:
        cs, eps = self.status.cs, self.status.eps
        cs_ok = cs is not None and cs.stat.registered
        lte = eps is not None and eps.stat.registered
        self.status.voice = cs_ok or (lte and bool(self.status.ims))
        if self.status.voice:
            self._problem(None)
        elif lte:
            self._problem(
                "registered on LTE without VoLTE: data works but calls cannot be placed "
                "(enable VoLTE/IMS on the modem and SIM, or use a network with 2G/3G)"
            )
        elif cs is not None and cs.stat is at.RegStat.DENIED:
            self._problem("the network denied registration (SIM barred or not provisioned)")
        else:
            self._problem(
                "no network: searching" if cs is not None and cs.stat is at.RegStat.SEARCHING else "no network"
            )

    async def _read_clock(self) -> None:
        reply = await self.command("AT+CCLK?")
        if not reply.ok or not reply.lines:
            return
        try:
            when = at.parse_cclk(reply.line("+CCLK"))
        except ValueError as err:
            self.log.warning("bad modem clock", error=str(err))
            return
        if when.year < 2020:
            return  # no NITZ received yet: the modem's clock still runs from its epoch
        self.status.network_time, self.status.network_time_at = when, time.monotonic()

    def network_time(self) -> dt.datetime | None:
        """Network time now (NITZ via AT+CCLK?, advanced by the monotonic clock), for the CDR clock."""
        if self.status.network_time is None or self.status.network_time_at is None:
            return None
        return self.status.network_time + dt.timedelta(seconds=time.monotonic() - self.status.network_time_at)

    async def _step_reset(self) -> None:
        self.status.resets += 1
        self._needs_reset = None  # this reset is the one that was due (AT+CRESET still comes first if needed)
        self._emit_call(self.tracker.line_lost())
        ports = self.ports
        rung = self._ladder
        self._ladder += 1
        dropped = self._gone.is_set()  # it went away by itself (brown-out, unplugged, reset elsewhere)
        if not dropped and rung == 0 and self._at is not None and self.profile.family is Family.V253:
            # Rung 1 on an analog modem: V.250 has no reset that re-enumerates; ATZ restores its
            # profile (FCLASS back to data) and a fresh bring-up on the same ports follows.
            with contextlib.suppress(CommandTimeoutError, PortGoneError):
                if (await self.command("ATZ", count_timeout=False)).ok:
                    self._set_state(LinkState.PROBE, "ATZ answered: bringing the modem up again")
                    return
        elif not dropped and rung == 0 and self._at is not None:
            # Rung 1: the modem's own full reset; it drops off the bus and comes back renamed.
            command = "AT+CRESET" if self._needs_creset else "AT+CFUN=1,1"
            self._needs_creset = False
            with contextlib.suppress(CommandTimeoutError, PortGoneError):
                reply = await self.command(command, count_timeout=False)
                if reply.ok:
                    dropped = await self._wait_gone(self.timeouts.port_drop)
        if not dropped:
            # Rung 2: the modem ignores us (or ignored the reset): reset its USB device.
            self.log.warning("modem did not drop off the bus; resetting its USB device", rung=rung)
            dropped = await self.usb_reset.reset(ports) and await self._wait_gone(self.timeouts.port_drop)
            if not dropped:
                self._problem("modem does not answer and this installation cannot reset its USB port")
        self._close_ports()
        if not dropped:
            await self._sleep(self.timeouts.retry * min(rung, 6))  # back off, then try the ports again
        self.log.info("waiting for the modem to enumerate", rung=rung)
        found = await self._wait_found(self.timeouts.reenumerate)
        if found is None:
            self._set_state(LinkState.ABSENT, "modem did not come back after reset")
            return
        self._open_ports(found)
        self._set_state(LinkState.PROBE, f"back as {found.at}")

    async def _wait_gone(self, within: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self._gone.wait()
                return True
        return False

    async def _wait_found(self, within: float) -> ModemPorts | None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline and not self._stopping:
            ports = await asyncio.to_thread(self.finder.find)
            if ports is not None:
                return ports
            await asyncio.sleep(min(0.5, self.timeouts.retry / 4))
        return None

    # ------------------------------------------------------------------ ports and the line router

    def _open_ports(self, ports: ModemPorts) -> None:
        self._close_ports()
        self._gone.clear()
        self._configured = False  # a fresh port may be a rebooted modem: its init is gone
        self._splitter = at.LineSplitter()
        self._router = at.AtRouter()
        self.streaming = False
        at_port = SerialPort(ports.at, self._on_at_data, self._on_gone)
        at_port.open()
        self._at = at_port
        self._audio_buf.clear()
        self._aligner = FrameAligner(self.profile.frame_bytes)
        self._uplink_tail = b""
        self._audio_pos = 0  # a freshly opened port starts on a sample
        if ports.audio is not None:
            audio = SerialPort(ports.audio, self._on_audio_data, self._on_gone)
            audio.open()
            self._audio = audio
        self.ports = ports
        self.status.ident = ports.ident

    def _close_ports(self) -> None:
        for port in (self._at, self._audio):
            if port is not None:
                port.close()
        self._at = self._audio = None
        if self._reply is not None and not self._reply.done():
            self._reply.set_exception(PortGoneError("port closed"))

    def _on_gone(self, why: str) -> None:
        self.log.warning("modem port gone", why=why)
        self._gone.set()
        if self._reply is not None and not self._reply.done():
            self._reply.set_exception(PortGoneError(why))
        self._wake.set()
        if self.state not in (LinkState.RESET, LinkState.ABSENT):
            self._emit_call(self.tracker.line_lost())

    def _on_at_data(self, data: bytes) -> None:
        if self.streaming:
            self._on_stream(data)
            return
        try:
            lines = self._splitter.feed(data)
        except ValueError as err:
            self.log.warning("garbage on the AT port", error=str(err))
            return
        for line in lines:
            event = self._router.feed(line)
            if isinstance(event, at.Reply):
                if self._reply is not None and not self._reply.done():
                    self._reply.set_result(event)
            elif isinstance(event, at.Urc):
                self._on_urc(event)

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
                for sms_listener in list(self.sms_listeners):
                    sms_listener(sms)
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
                streaming, self.streaming = self.streaming, False
                self._check_stream_at_end()
                if self._needs_reset:
                    self._wake.set()  # reset now that the line is free, not a poll later
                self._audio_buf.clear()  # a partial frame left over would misalign the next call's frames
                self._aligner.reset()
                self._uplink_tail = b""
                self._audio_task = None
                if self.profile.audio_off and self.state in _CALL_STATES:
                    asyncio.get_running_loop().create_task(self._quiet(self.profile.audio_off))
                if (
                    self.profile.family is Family.V253
                    and event.reason not in (EndReason.LOCAL, EndReason.LINE_LOST)
                    and self.state is LinkState.READY
                ):
                    asyncio.get_running_loop().create_task(self._analog_on_hook(streaming))
            for listener in list(self.call_listeners):
                listener(event)

    def _emit_dtmf(self, digit: str) -> None:
        for listener in list(self.dtmf_listeners):
            listener(digit)

    def _check_stream_at_end(self) -> None:
        # The next call's first frame must not count as a stall of this one: forget this call's clock.
        active_at, last = self._active_at, self.last_frame_at
        self._active_at, self.last_frame_at = None, 0.0
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
        async with self._lock:  # nothing (a new call's AT+VLS=1) may come between the two
            with contextlib.suppress(TrunkError):
                if streaming and self._at is not None:
                    self._at.write(dle.HOST_END_RX_CONEXANT + dle.HOST_END_TX)
                    await asyncio.sleep(0.05)  # the modem's <DLE><ETX> OK, before the next command
                await self._exchange(self.profile.hangup)

    async def _quiet(self, command: str) -> None:
        with contextlib.suppress(TrunkError):
            await self.command(command)

    async def _read_sms(self, indication: at.SmsIndication) -> None:
        with contextlib.suppress(TrunkError):
            reply = await self.command(f"AT+CMGR={indication.index}")
            if reply.ok:
                sms = at.parse_cmgr(reply.lines)
                for listener in list(self.sms_listeners):
                    listener(sms)
                await self.command(f"AT+CMGD={indication.index}")  # a full SIM stops new-SMS URCs

    # ------------------------------------------------------------------ commands

    async def command(
        self, command: str, limit: float | None = None, *, secret: bool = False, count_timeout: bool = True
    ) -> at.Reply:
        """Send one AT command and wait for its final result (one outstanding at a time)."""
        async with self._lock:
            return await self._exchange(command, limit, secret=secret, count_timeout=count_timeout)

    async def _exchange(
        self,
        command: str,
        within: float | None = None,
        *,
        secret: bool = False,
        count_timeout: bool = True,
        payload: bytes | None = None,
    ) -> at.Reply:
        # The caller holds self._lock. `payload` replaces the command line on the wire (SMS text).
        shown = command.split("=", 1)[0] + "=****" if secret else command
        limit = within if within is not None else self.timeouts.for_command(command)
        port = self._at
        if port is None or port.gone:
            raise PortGoneError(f"{shown}: no port")
        self._reply = asyncio.get_running_loop().create_future()
        self._router.begin(command)
        try:
            port.write(payload if payload is not None else command.encode("latin-1") + b"\r")
            async with asyncio.timeout(limit):
                reply = await self._reply
        except TimeoutError:
            self._router.abandon()
            if count_timeout:
                self._timeouts_in_row += 1
            self.log.warning("command timed out", command=shown, timeout_s=limit, in_row=self._timeouts_in_row)
            if count_timeout and self._timeouts_in_row >= 2:
                raise CommandTimeoutError(f"{shown}: no answer within {limit:.1f} s, twice in a row") from None
            return at.Reply(shown, (), at.Final(at.FinalKind.ERROR, text="timeout"))
        finally:
            self._reply = None
        self._timeouts_in_row = 0
        self.log.debug("command", command=shown, result=str(reply.final))
        return replace(reply, command=shown) if secret else reply

    async def check(self, command: str) -> at.Reply:
        """A command that must succeed; CommandError otherwise."""
        reply = await self.command(command)
        if not reply.ok:
            raise CommandError(command, str(reply.final))
        return reply

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
        if self.streaming and self._at is not None:
            self.streaming = False
            self._at.write(dle.HOST_END_RX_CONEXANT + dle.HOST_END_TX)
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
        async with self._lock:  # the prompt and the text belong together: no command in between
            prompt = await self._exchange(command)
            if prompt.final.kind is not at.FinalKind.PROMPT:
                raise CommandError(command, str(prompt.final))
            reply = await self._exchange("AT+CMGS", payload=body + b"\x1a")
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
                self._stream = dle.DleDecoder()
                self.streaming = True
            return self.streaming
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

    def _on_audio_data(self, data: bytes) -> None:
        start = self._audio_pos
        self._audio_pos += len(data)
        self._chunk_bytes = len(data)
        state = self.tracker.state
        if state is not CallState.ACTIVE and not (
            # Before the answer only where the PCM already carries the outgoing call's downlink:
            # the network's ringback and announcements, which the caller hears as early media.
            self.profile.early_audio and self.tracker.outgoing and state in _EARLY_STATES
        ):
            return
        aligner = self._aligner
        before = aligner.stats.realignments
        for frame in aligner.feed(data, start):
            self._frame(frame)
        if aligner.stats.realignments != before:
            # Bytes were lost on the way (a USB overrun, a stalled reader): the audio said so.
            self.status.realignments += aligner.stats.realignments - before
            self.log.warning("PCM realigned after lost bytes", realignments=self.status.realignments)

    def _frame(self, frame: bytes) -> None:
        now = time.monotonic()
        gap = now - self.last_frame_at
        if self.last_frame_at and gap > self.timeouts.frame_gap:
            if self._chunk_bytes < 3 * len(frame):
                self.status.stalls += 1
                self.log.warning("PCM stream stalled", gap_ms=round(gap * 1000))
            else:
                # The audio waited in the tty and came in one read: this host was busy, not the modem.
                self.log.info("PCM read late", gap_ms=round(gap * 1000), backlog_bytes=self._chunk_bytes)
        self.last_frame_at = now
        if self.frame_sink is not None:
            self.frame_sink(frame)

    def _on_stream(self, data: bytes) -> None:
        self._chunk_bytes = 2 * len(data)  # 8-bit samples on the wire, 16-bit frames out
        for item in self._stream.feed(data):
            if isinstance(item, bytes):
                self._audio_buf += dle.u8_to_s16le(item)
                while len(self._audio_buf) >= 320:
                    frame = bytes(self._audio_buf[:320])
                    del self._audio_buf[:320]
                    self._frame(frame)
            elif isinstance(item, dle.Dtmf):
                self._emit_dtmf(item.digit)
            elif item is dle.DleEvent.BUSY:
                self._emit_call(self.tracker.feed(at.Urc("BUSY")))
            elif item is dle.DleEvent.END_OF_STREAM:
                self.streaming = False

    def write_frame(self, frame: bytes) -> None:
        """Send one 20 ms S16LE frame (at profile.sample_rate) to the modem (dropped if the port cannot take it now)."""
        if self.profile.audio_start is AudioStart.STREAM:
            if self.streaming and self._at is not None:
                self._at.write_some(dle.encode(dle.s16le_to_u8(frame)))
            return
        port = self._audio
        if port is None:
            return
        # A tty that takes only part of a frame must get the rest before anything else: a frame
        # cut short would leave the modem one byte off for the rest of the call (loud noise).
        # Whole frames are what gets dropped when the port is full.
        if self._uplink_tail:
            self._uplink_tail = self._uplink_tail[port.write_some(self._uplink_tail) :]
            if self._uplink_tail:
                return
        written = port.write_some(frame)
        if 0 < written < len(frame):
            self._uplink_tail = frame[written:]


_EARLY_STATES = (CallState.DIALING, CallState.ALERTING)
# Where a call may have been up: CONFIG too, when the SIM came back under an emergency call.
_CALL_STATES = (LinkState.READY, LinkState.CONFIG, *LIMITED_SERVICE)
_ICCID_COMMANDS = {Family.QUECTEL: "AT+QCCID", Family.SIMCOM: "AT+CICCID", Family.HUAWEI: "AT+CCID"}

_SMS_PLAIN = str.maketrans(
    {"→": "->", "←": "<-", "–": "-", "—": "-", "“": '"', "”": '"', "‘": "'", "’": "'", "…": "..."}
)


def _first(reply: at.Reply) -> str | None:
    return reply.lines[0] if reply.ok and reply.lines else None
