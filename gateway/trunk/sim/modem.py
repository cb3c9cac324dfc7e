"""A simulated USB modem on pty pairs: each family's AT dialogue, URCs, calls, PCM and faults.

Faithful to research/modems.md: echo until ATE0, CRLF framing, replies split across reads, URCs
injected mid-reply, delays like the real thing (scaled by `time_scale`), SIM PIN states,
registration changes, repeated RING + caller ID, PCM only after the family's audio command,
paced at 20 ms with jitter and ±ppm drift, the network's ringback (425 Hz) and announcements
in-band before the answer where the family's PCM carries them, and faults on demand. Runs on any
asyncio loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
import random
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog

from gateway.trunk import dle, tones
from gateway.trunk.profiles import Family
from gateway.trunk.sim.pty import PtyPort

log = structlog.get_logger("trunk.sim")


class Network(enum.StrEnum):
    """What radio network the simulated SIM finds."""

    NONE = "none"
    GSM = "gsm"
    LTE_VOLTE = "lte"
    LTE_NO_VOLTE = "lte-no-volte"  # data works, calls fail: the 2G/3G shutdown trap
    DENIED = "denied"  # a GSM cell that refuses the SIM (+CREG: 3): limited service, emergency calls only


class Outcome(enum.StrEnum):
    """What the far end does with a call we place."""

    ANSWER = "answer"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    UNREACHABLE = "unreachable"


class AudioSource(Protocol):
    """Where far-end audio comes from (S16LE mono at the modem's PCM rate: 8 kHz, 16 kHz after AT+CPCMFRM=1)."""

    def read(self, count: int) -> bytes:
        """The next count samples."""
        ...


@dataclass
class FarEnd:
    """The person at the other end of the mobile/analog line."""

    outcome: Outcome = Outcome.ANSWER
    answer_after_s: float = 2.0
    source: AudioSource = field(default_factory=tones.Silence)
    # UNREACHABLE: the network's in-band announcement ("the number you have called is not
    # available") while the call is still being set up, for announcement_s (scaled), then the call
    # fails. None: it fails at once. (While the far end rings the network plays the ringback tone.)
    announcement: AudioSource | None = None
    announcement_s: float = 6.0
    heard: bytearray = field(default_factory=bytearray)  # what reached them from us (S16LE at the PCM rate)
    dtmf_received: list[str] = field(default_factory=list)  # AT+VTS digits
    dialled: list[str] = field(default_factory=list)


_USB_NAMES = {
    Family.QUECTEL: ("usb-Quectel_EC25-EG25_{serial}", 2, 1),
    Family.SIMCOM: ("usb-SimTech__Incorporated_SimTech__Incorporated_{serial}", 2, 4),
    Family.HUAWEI: ("usb-HUAWEI_Technology_HUAWEI_Mobile_{serial}", 2, 1),
    Family.V253: ("usb-U.S.Robotics_USB_Modem_{serial}", 0, None),
}
_MODELS = {
    Family.QUECTEL: ("Quectel", "EC25", "EC25EFAR06A08M4G"),
    Family.SIMCOM: ("SIMCOM INCORPORATED", "SIMCOM_SIM7600E-H", "LE20B04SIM7600M22"),
    Family.HUAWEI: ("huawei", "E173", "11.126.85.00.209"),
    Family.V253: ("U.S. Robotics", "USR5637", "1.2.23"),
}
ICCID = "89490200001234567890"  # the simulated SIM's serial
# 3GPP TS 22.101 §10.1.1: the numbers every handset treats as emergency numbers, and those it adds
# while no SIM is inserted. A SIM adds its own (EF_ECC, readable without the PIN): SimConfig.ecc.
ALWAYS_EMERGENCY = ("112", "911")
NO_SIM_EMERGENCY = ("000", "08", "110", "118", "119", "999")
# Networks with a cell that takes an emergency call whatever the SIM (LTE without VoLTE has no voice).
_EMERGENCY_CELLS = (Network.GSM, Network.LTE_VOLTE, Network.DENIED)
CME_TEXT = {3: "operation not allowed", 4: "operation not supported", 10: "SIM not inserted"}
CME_TEXT |= {11: "SIM PIN required", 12: "SIM PUK required", 16: "incorrect password", 30: "no network service"}


@dataclass
class SimConfig:
    """How a simulated modem behaves."""

    family: Family
    serial: str = "867123045678901"
    sim_pin: str | None = None  # the SIM asks for this PIN at boot
    sim_inserted: bool = True
    ecc: tuple[str, ...] = ()  # the SIM's own emergency numbers (EF_ECC), besides 3GPP's
    network: Network = Network.LTE_VOLTE
    time_scale: float = 1.0  # multiplies every realistic delay (0.05 in tests)
    drift_ppm: float = 0.0  # the modem's audio clock against the host's
    jitter_ms: float = 3.0
    split_reads: bool = True
    boot_s: float = 3.0
    reset_gap_s: float = 8.0  # how long the ports are gone after AT+CFUN=1,1
    ring_interval_s: float = 4.0
    max_rings: int = 8
    seed: int = 1
    network_time: dt.datetime = dt.datetime(2026, 11, 25, 9, 59, 44, tzinfo=dt.UTC)


@dataclass
class _Call:
    idx: int
    number: str
    outgoing: bool
    stat: int  # +CLCC stat: 0 active, 2 dialing, 3 alerting, 4 incoming
    started: float = field(default_factory=time.monotonic)
    answered_at: float | None = None
    orig_sent: bool = False
    network_audio: AudioSource | None = None  # what the network plays in-band before the answer
    pcm: bool = False  # its PCM loop runs
    emergency: bool = False  # placed as an emergency call (also in limited service)


# Whose PCM carries an outgoing call's downlink before the answer (the profiles say why): the
# EC25 from call setup on (QPCMV is on from init), the E173 once AT^DDSETEX=2 came. The SIM7600
# sends nothing until CPCMREG=1 and the answer, whatever the network plays.
_EARLY_DOWNLINK = (Family.QUECTEL, Family.HUAWEI)
_PCM_BACKLOG = 32000  # one second at 16 kHz, two at 8 kHz: an even count, so whole samples are kept


class SimModem:
    """One simulated modem: AT port, audio port (when the family has one), by-id links."""

    def __init__(self, config: SimConfig, by_id_dir: Path, far_end: FarEnd | None = None) -> None:
        self.config = config
        self.family = config.family
        self.by_id_dir = by_id_dir
        self.far_end = far_end or FarEnd()
        self.rng = random.Random(config.seed)
        self.at_port: PtyPort | None = None
        self.audio_port: PtyPort | None = None
        self.plugged = asyncio.Event()
        self.commands: list[str] = []  # every command received, PINs masked
        self.sms_sent: list[tuple[str, str]] = []
        self.emergency_calls: list[str] = []  # numbers dialled as emergency calls (any SIM state)
        self.dial_log: list[tuple[float, str]] = []  # (time.monotonic(), command) as each ATD came in
        self.resets = 0
        self.names_used: set[str] = set()
        # faults
        self.hang_commands = 0  # swallow the next n commands
        self.port_hung = False  # nothing in, nothing out until replugged
        self.cpcmreg_error_next = False  # the first CPCMREG=1 answers ERROR and PCM degrades
        self.stall_until = 0.0
        self.drop_next = 0  # bytes the next PCM frame loses at a random point (a USB overrun)
        self.drops: list[float] = []  # time.monotonic() of each injected loss
        self.write_stall_until = 0.0  # PCM is kept back until then, then sent in one burst (a loaded host)
        self._pcm_pending = b""  # PCM the audio tty did not take yet
        self._tasks: set[asyncio.Task[None]] = set()
        self._out: asyncio.Queue[bytes] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._cmd_queue: asyncio.Queue[str] = asyncio.Queue()
        self._inbuf = bytearray()
        # Gains the modem keeps across resets. The initial values are the example replies in
        # chan_quectel's parser, not documented defaults (those depend on the audio mode).
        initial: dict[Family, dict[str, tuple[int, ...]]] = {
            Family.QUECTEL: {"+QMIC": (20577, 16001)},
            Family.SIMCOM: {"+CMICGAIN": (3,), "+COUTGAIN": (8,)},
        }
        self.gains = initial.get(self.family, {})
        self._reset_state()

    # ------------------------------------------------------------------ lifecycle

    def _reset_state(self) -> None:
        self.echo = True
        self.cmee = 0
        self.sim_state = (
            "NOT INSERTED" if not self.config.sim_inserted else ("SIM PIN" if self.config.sim_pin else "READY")
        )
        self.pin_attempts = 3
        self.creg_n = 0
        self.cereg_n = 0
        self.clip = False
        self.ccinfo = False
        self.clcc_urc = False
        self.qpcmv = False
        self.cpcmreg = False
        # SIM7600: AT+CPCMFRM=1 → 16 kHz, from the next AT+CPCMREG=1 (taken as lost at power-up; the
        # driver says it at every bring-up either way).
        self.pcm_rate = 8000
        if self.family is Family.QUECTEL:
            self.gains["+QRXGAIN"] = (20577,)  # the EC2x manual: not saved; its example reads 20577
        self.ddsetex = False
        self.pcm_degraded = getattr(self, "pcm_degraded", False)
        self.cmgs_to: str | None = None
        self.call: _Call | None = None
        self.fclass = 0
        self.vcid = False
        self.streaming = False
        self.in_command = False
        self._mid_urcs: list[str] = []
        self.registered_at: float | None = None

    async def start(self) -> None:
        """Plug the modem in and boot it."""
        self._writer = asyncio.create_task(self._write_loop())
        self._spawn(self._command_loop())
        self._plug()

    async def stop(self) -> None:
        """Unplug and stop every task."""
        self._unplug()
        tasks = list(self._tasks) + ([self._writer] if self._writer else [])
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _delay(self, seconds: float) -> float:
        return seconds * self.config.time_scale

    def _plug(self) -> None:
        loop = asyncio.get_running_loop()
        self._reset_state()
        self.at_port = self._fresh_pty()
        loop.add_reader(self.at_port.master, self._on_at_readable)
        stem, at_if, audio_if = _USB_NAMES[self.family]
        stem = stem.format(serial=self.config.serial)
        self.by_id_dir.mkdir(parents=True, exist_ok=True)
        if audio_if is not None:
            self.audio_port = self._fresh_pty()
            loop.add_reader(self.audio_port.master, self._on_audio_readable)
            _link(self.by_id_dir / f"{stem}-if{audio_if:02d}-port0", self.audio_port.name)
        _link(self.by_id_dir / f"{stem}-if{at_if:02d}-port0", self.at_port.name)
        self.plugged.set()
        log.info(
            "sim plugged",
            family=self.family.value,
            at=self.at_port.name,
            audio=self.audio_port and self.audio_port.name,
        )
        self._spawn(self._boot())

    def _fresh_pty(self) -> PtyPort:
        # A re-enumerated modem comes back under new names: never reuse a name it had before.
        held: list[PtyPort] = []
        try:
            while True:
                port = PtyPort()
                if port.name not in self.names_used:
                    self.names_used.add(port.name)
                    return port
                held.append(port)
        finally:
            for port in held:
                port.close()

    def _unplug(self) -> None:
        self.plugged.clear()
        self.call = None
        self.streaming = False
        for link in self.by_id_dir.glob("usb-*"):
            with contextlib.suppress(OSError):
                link.unlink()
        loop = asyncio.get_running_loop()
        for port in (self.at_port, self.audio_port):
            if port is not None and not port.closed:
                loop.remove_reader(port.master)
                port.close()
        self.at_port = self.audio_port = None
        while not self._out.empty():  # what was in flight dies with the port
            self._out.get_nowait()
        self._inbuf.clear()
        self.port_hung = False
        self.stall_until = 0.0  # any reset restarts a stalled PCM engine

    async def replug(self, gap_s: float | None = None, *, cold: bool = True) -> None:
        """Drop off the USB bus for a while and come back under new device names (a reset).

        cold: power was lost (unplugged, brown-out, hub power-cycle), which also clears degraded PCM;
        AT+CFUN=1,1 is a warm reset that does not (a known SIM7600 fault).
        """
        self.resets += 1
        if cold:
            self.pcm_degraded = False
        self._unplug()
        await asyncio.sleep(self._delay(self.config.reset_gap_s if gap_s is None else gap_s))
        self._plug()

    async def _boot(self) -> None:
        await asyncio.sleep(self._delay(self.config.boot_s))
        if self.family is Family.V253:
            return
        self.urc("RDY")
        if self.family is Family.QUECTEL:
            self.urc("+CFUN: 1")
        self.urc(f"+CPIN: {self.sim_state}" if self.sim_state != "NOT INSERTED" else "+CPIN: NOT READY")
        if self.sim_state == "READY":
            self._sim_ready()

    def _sim_ready(self) -> None:
        self.urc("+QIND: SMS DONE" if self.family is Family.QUECTEL else "SMS DONE")
        self._spawn(self._register_later())

    async def _register_later(self) -> None:
        await asyncio.sleep(self._delay(2.0))
        self.registered_at = time.monotonic()
        self._announce_registration()

    # ------------------------------------------------------------------ network state

    def _creg_stat(self) -> tuple[int, int | None]:
        if self.sim_state != "READY" or self.registered_at is None:
            return (2 if self.sim_state == "READY" else 0), None
        return {
            Network.NONE: (0, None),
            Network.GSM: (1, 0),
            Network.LTE_VOLTE: (1, 7),
            Network.LTE_NO_VOLTE: (0, None),
            Network.DENIED: (3, None),
        }[self.config.network]

    def _cereg_stat(self) -> tuple[int, int | None]:
        if self.sim_state != "READY" or self.registered_at is None:
            return 0, None
        if self.config.network is Network.DENIED:
            return 3, None
        if self.config.network in (Network.LTE_VOLTE, Network.LTE_NO_VOLTE):
            return 1, 7
        return 0, None

    @property
    def voice_network(self) -> bool:
        """Whether a call could be placed now."""
        return self._creg_stat()[0] in (1, 5)

    def is_emergency_number(self, number: str) -> bool:
        """Whether this modem dials number as an emergency call: 3GPP's numbers, and the SIM's when one is in."""
        if number in ALWAYS_EMERGENCY:
            return True
        if self.sim_state == "NOT INSERTED":
            return number in NO_SIM_EMERGENCY
        return number in self.config.ecc

    def _carries(self, call: _Call) -> bool:
        """Whether the network keeps call up: a registered SIM, or any cell for an emergency call."""
        return self.voice_network or (call.emergency and self.config.network in _EMERGENCY_CELLS)

    def _announce_registration(self) -> None:
        for name, n, (stat, act) in (
            ("+CREG", self.creg_n, self._creg_stat()),
            ("+CEREG", self.cereg_n, self._cereg_stat()),
        ):
            if n == 1:
                self.urc(f"{name}: {stat}")
            elif n == 2:
                self.urc(f'{name}: {stat},"1A2B","01A2D3F4",{act}' if act is not None else f"{name}: {stat}")

    def set_network(self, network: Network) -> None:
        """The radio environment changes (coverage lost, 3G switched off)."""
        self.config.network = network
        if self.call is not None and not self._carries(self.call):
            self._end_call(cause=34)
        self._announce_registration()

    def remove_sim(self) -> None:
        """Pull the SIM card out."""
        self.config.sim_inserted = False
        self.sim_state = "NOT INSERTED"
        self.registered_at = None
        if self.call is not None and not self.call.emergency:
            self._end_call(cause=34)  # TS 31.102: calls end with the UICC, except emergency calls
        self.urc("+CPIN: NOT READY")
        self._announce_registration()

    def insert_sim(self) -> None:
        """Put the SIM card back (hot-plug detection on): +CPIN says so, registration follows."""
        if self.sim_state != "NOT INSERTED":
            return
        self.config.sim_inserted = True
        self.sim_state = "SIM PIN" if self.config.sim_pin else "READY"
        self.pin_attempts = 3  # a fresh card, or the same one re-read: the counter lives on the SIM
        self.urc(f"+CPIN: {self.sim_state}")
        if self.sim_state == "READY":
            self._sim_ready()

    # ------------------------------------------------------------------ output

    def _raw(self, data: bytes) -> None:
        self._out.put_nowait(data)

    def urc(self, line: str) -> None:
        """Send an unsolicited line; inside a command's reply it lands before the final result."""
        if self.in_command:
            self._mid_urcs.append(line)
        else:
            self._raw(f"\r\n{line}\r\n".encode("latin-1"))

    def _reply(self, *lines: str, final: str = "OK") -> None:
        for line in lines:
            self._raw(f"\r\n{line}\r\n".encode("latin-1"))
        for urc in self._mid_urcs:
            self._raw(f"\r\n{urc}\r\n".encode("latin-1"))
        self._mid_urcs.clear()
        if final:
            self._raw(f"\r\n{final}\r\n".encode("latin-1"))

    def _error(self, code: int) -> None:
        if self.cmee == 1:
            self._reply(final=f"+CME ERROR: {code}")
        elif self.cmee == 2:
            self._reply(final=f"+CME ERROR: {CME_TEXT.get(code, 'unknown')}")
        else:
            self._reply(final="ERROR")

    async def _write_loop(self) -> None:
        while True:
            data = await self._out.get()
            port = self.at_port
            if port is None or port.closed or self.port_hung:
                continue
            pieces = [data]
            if self.config.split_reads and len(data) > 3 and self.rng.random() < 0.3:
                cut = self.rng.randrange(1, len(data))
                pieces = [data[:cut], data[cut:]]
            for piece in pieces:
                view = piece
                while view:
                    written = port.write(view)
                    view = view[written:]
                    if view:
                        await asyncio.sleep(0.002)
                        if port.closed:
                            break
                if len(pieces) > 1:
                    await asyncio.sleep(0.001)  # the second half arrives in a later read

    # ------------------------------------------------------------------ input

    def _on_at_readable(self) -> None:
        port = self.at_port
        if port is None:
            return
        data = port.read()
        if not data or self.port_hung:
            return
        if self.streaming:
            self._on_stream_input(data)
            return
        if self.echo and self.cmgs_to is None:
            self._raw(data)
        self._inbuf += data
        while True:
            if self.cmgs_to is not None:
                end = self._inbuf.find(b"\x1a")
                if end < 0:
                    return
                text = self._inbuf[:end].decode("latin-1")
                del self._inbuf[: end + 1]
                self._cmd_queue.put_nowait("\x1a" + text)
                continue
            cut = self._inbuf.find(b"\r")
            if cut < 0:
                return
            line = self._inbuf[:cut].decode("latin-1").strip()
            del self._inbuf[: cut + 1]
            if line:
                self._cmd_queue.put_nowait(line)

    async def _command_loop(self) -> None:
        while True:
            line = await self._cmd_queue.get()
            if line.startswith("\x1a"):
                await self._finish_cmgs(line[1:])
                continue
            masked = "AT+CPIN=****" if line.upper().startswith("AT+CPIN=") else line
            self.commands.append(masked)
            if line.upper().startswith("ATD"):
                self.dial_log.append((time.monotonic(), line))
            if self.hang_commands > 0:
                self.hang_commands -= 1
                log.info("sim swallows a command (fault)", command=masked)
                continue
            self.in_command = True
            try:
                await self._dispatch(line)
            except Exception:
                log.exception("sim command failed", command=masked)
                self._reply(final="ERROR")
            finally:
                self.in_command = False
                if self._mid_urcs:
                    self._reply(final="")

    # ------------------------------------------------------------------ commands

    async def _dispatch(self, line: str) -> None:
        cmd = line.upper()
        await asyncio.sleep(self._delay(0.02))
        if not cmd.startswith("AT"):
            self._reply(final="ERROR")
            return
        body = cmd[2:]
        arg = line[2:]
        if body in ("", "Z", "&F"):
            if body == "Z":
                # The stored profile comes back: echo on, and an analog modem back in data mode.
                self.echo, self.fclass, self.vcid = True, 0, False
            self._reply()
        elif body in ("E0", "E1"):
            self.echo = body == "E1"
            self._reply()
        elif body.startswith("+CMEE="):
            self.cmee = int(body[6:])
            self._reply()
        elif body in ("+CGMI", "+GMI"):
            self._reply(_MODELS[self.family][0])
        elif body in ("+CGMM", "+GMM"):
            self._reply(_MODELS[self.family][1])
        elif body in ("+CGMR", "+GMR"):
            self._reply(_MODELS[self.family][2])
        elif body in ("+CGSN", "+GSN"):
            self._reply(self.config.serial)
        elif body == "I":
            self._reply(*_MODELS[self.family])
        elif self.family is Family.V253:
            await self._v253(body, arg)
        elif body == "+CPIN?":
            if self.sim_state == "NOT INSERTED":
                self._error(10)
            else:
                self._reply(f"+CPIN: {self.sim_state}")
        elif body.startswith("+CPIN="):
            await self._enter_pin(arg[6:].strip('"'))
        elif self.sim_state != "READY" and body.startswith(
            ("+CIMI", "+CCID", "+QCCID", "+CICCID", "A", "+CMGS", "+COPS")
        ):
            self._error(10 if self.sim_state == "NOT INSERTED" else 11)
        elif body == "+CIMI":
            self._reply("262021234567890")
        elif body in ("+CCID", "+QCCID"):
            self._reply(f"{body}: {ICCID}")
        elif body == "+CICCID" and self.family is Family.SIMCOM:
            self._reply(f"+ICCID: {ICCID}")
        elif body.startswith("+CREG="):
            self.creg_n = int(body[6:])
            self._reply()
        elif body.startswith("+CEREG="):
            self.cereg_n = int(body[7:])
            self._reply()
        elif body == "+CREG?":
            stat, act = self._creg_stat()
            extra = f',"1A2B","01A2D3F4",{act}' if self.creg_n == 2 and act is not None else ""
            self._reply(f"+CREG: {self.creg_n},{stat}{extra}")
        elif body == "+CEREG?":
            stat, act = self._cereg_stat()
            extra = f',"1A2B","01A2D3F4",{act}' if self.cereg_n == 2 and act is not None else ""
            self._reply(f"+CEREG: {self.cereg_n},{stat}{extra}")
        elif body == "+CIREG?":
            self._reply(f"+CIREG: 0,{1 if self.config.network is Network.LTE_VOLTE and self.registered_at else 0}")
        elif body == "+COPS?":
            stat, act = self._creg_stat()
            lte_stat, _ = self._cereg_stat()
            if stat in (1, 5) or lte_stat == 1:
                self._reply(f'+COPS: 0,0,"Lab Mobile",{act if act is not None else 7}')
            else:
                self._reply("+COPS: 0")
        elif body == "+CSQ":
            rssi = 23 if self.config.network is not Network.NONE else 99
            if self.family is Family.HUAWEI:
                self.urc(f"^RSSI:{rssi}")  # lands inside the +CSQ reply, as on the real dongle
            self._reply(f"+CSQ: {rssi},99")
        elif body.startswith(("+CLIP=", "+CTZU=", "+CMGF=", "+CNMI=", "+CPMS", "+CLVL")):
            if body.startswith("+CLIP="):
                self.clip = body.endswith("1")
            self._reply()
        elif body == "+CCLK?":
            elapsed = time.monotonic() - (self.registered_at or time.monotonic())
            now = self.config.network_time + dt.timedelta(seconds=elapsed)
            self._reply(f'+CCLK: "{now:%y/%m/%d,%H:%M:%S}+00"')
        elif body.startswith("+CFUN=1,1") or body == "+CRESET":
            self._reply()
            if body == "+CRESET":
                self.pcm_degraded = False  # a known SIM7600 fault: only AT+CRESET cures it, not AT+CFUN=1,1
            self._spawn(self._reset_after_reply())
        elif body == "+CFUN?":
            self._reply("+CFUN: 1")
        elif body.startswith("+CMGS="):
            self.cmgs_to = arg[6:].strip('"')
            self._raw(b"\r\n> ")
            self.in_command = False
        elif body.startswith("D"):
            await self._dial(arg[1:].rstrip(";"))
        elif body == "A":
            await self._answer()
        elif body in ("H", "H0", "+CHUP", "+QHUP") or body.startswith("+QHUP="):
            if (
                self.family is Family.HUAWEI
                and self.call is not None
                and self.call.outgoing
                and not self.call.orig_sent
            ):
                # Field note: AT+CHUP before ^ORIG wedges the E173 until it is reset.
                log.info("sim wedged by AT+CHUP before ^ORIG (Huawei quirk)")
                self.port_hung = True
                return
            self._reply()
            if self.call is not None:
                self._end_call(cause=16, local=True)
        elif body.startswith("+VTS="):
            digits = arg[5:].strip('"')
            if self.call is None or self.call.stat != 0:
                self._error(3)
            else:
                await asyncio.sleep(self._delay(0.1))
                self.far_end.dtmf_received.extend(d for d in digits if d != ",")
                self._reply()
        elif body == "+CLCC":
            lines = [self._clcc_line("+CLCC: ")] if self.call else []
            self._reply(*lines)
        elif body == "+CLCC=1" and self.family is Family.SIMCOM:
            self.clcc_urc = True
            self._reply()
        elif not await self._family_command(body):
            self._reply(final="ERROR")

    async def _family_command(self, body: str) -> bool:
        handler = {Family.QUECTEL: self._quectel, Family.SIMCOM: self._simcom, Family.HUAWEI: self._huawei}
        return await handler[self.family](body) if self.family in handler else False

    async def _enter_pin(self, pin: str) -> None:
        if self.sim_state == "NOT INSERTED":
            self._error(10)
        elif self.sim_state == "READY":
            self._error(3)
        elif self.sim_state == "SIM PUK":
            self._error(12)
        elif pin == self.config.sim_pin:
            await asyncio.sleep(self._delay(0.3))
            self.sim_state = "READY"
            self._reply()
            self.urc("+CPIN: READY")
            self._sim_ready()
        else:
            self.pin_attempts -= 1
            if self.pin_attempts == 0:
                self.sim_state = "SIM PUK"
            self._error(16)

    async def _quectel(self, body: str) -> bool:
        if body.startswith('+QINDCFG="CCINFO",'):
            self.ccinfo = body.endswith("1")
        elif body == "+QPCMV?":
            self._reply(f"+QPCMV: {int(self.qpcmv)},0")
            return True
        elif body.startswith("+QPCMV="):
            self.qpcmv = body.startswith("+QPCMV=1")
            self._maybe_audio()
        elif body == '+QCFG="IMS"':
            volte = int(self.config.network is Network.LTE_VOLTE)
            self._reply(f'+QCFG: "ims",{volte},{volte}')
            return True
        elif body.startswith(("+QMIC", "+QRXGAIN")):
            # AT+QMIC=<txgain>[,<txdgain>], AT+QRXGAIN=<rxgain>: 0–65535 each (EC2x AT manual).
            return self._gain(body, "+QMIC", 65535, 2) or self._gain(body, "+QRXGAIN", 65535)
        elif not body.startswith(("+QCFG=", "+QTONEDET=", "+QURCCFG=")):
            return False
        self._reply()
        return True

    async def _simcom(self, body: str) -> bool:
        if body == "+CPCMREG?":
            self._reply(f"+CPCMREG: {int(self.cpcmreg)}")
        elif body.startswith("+CPCMREG="):
            on = body.endswith("1")
            if on and self.cpcmreg_error_next:
                self.cpcmreg_error_next = False
                self.pcm_degraded = True  # on a SIM7600 a degraded PCM follows this ERROR
                self._reply(final="ERROR")
                return True
            self.cpcmreg = on
            self._reply()
            self._maybe_audio()
        elif body == "+CPCMFRM?":
            self._reply(f"+CPCMFRM: {int(self.pcm_rate == 16000)}")
        elif body == "+CPCMFRM=?":
            self._reply("+CPCMFRM: (0-1)")
        elif body.startswith("+CPCMFRM="):
            # 0: 8 kHz (320-byte frames), 1: 16 kHz (640-byte frames), from the next CPCMREG=1.
            if body in ("+CPCMFRM=0", "+CPCMFRM=1"):
                self.pcm_rate = 16000 if body.endswith("1") else 8000
                self._reply()
            else:
                self._reply(final="ERROR")
        elif body.startswith(("+CMICGAIN", "+COUTGAIN")):
            # Levels 0–8, as chan_quectel drives the SIM7600.
            return self._gain(body, "+CMICGAIN", 8) or self._gain(body, "+COUTGAIN", 8)
        elif body.startswith("+CNMP"):
            self._reply()
        else:
            return False
        return True

    def _gain(self, body: str, name: str, high: int, arity: int = 1) -> bool:
        """Read, test or write one gain in its documented range 0–high; ERROR outside it."""
        if body == f"{name}?":
            self._reply(f"{name}: {','.join(str(v) for v in self.gains[name])}")
        elif body == f"{name}=?":
            self._reply(f"{name}: " + ",".join([f"(0-{high})"] * arity))
        elif body.startswith(f"{name}="):
            fields = body[len(name) + 1 :].split(",")
            values = tuple(int(f) for f in fields if f.strip().isdigit())
            if len(values) != len(fields) or not 1 <= len(values) <= arity or max(values) > high:
                self._reply(final="ERROR")
            else:
                self.gains[name] = values + self.gains[name][len(values) :]
                self._reply()
        else:
            return False
        return True

    async def _huawei(self, body: str) -> bool:
        if body == "^CVOICE?":
            self._reply("^CVOICE:0,8000,16,20")
        elif body.startswith("^DDSETEX="):
            self.ddsetex = body.endswith("2")
            self._reply()
            self._maybe_audio()
        elif body.startswith(("^CVOICE=", "^CURC=", "^SYSCFG")):
            self._reply()
        else:
            return False
        return True

    # ------------------------------------------------------------------ calls

    def _clcc_line(self, prefix: str) -> str:
        call = self.call
        assert call is not None
        toa = 145 if call.number.startswith("+") else 129
        return f'{prefix}{call.idx},{0 if call.outgoing else 1},{call.stat},0,0,"{call.number}",{toa}'

    def _call_urcs(self) -> None:
        call = self.call
        if call is None:
            return
        if self.family is Family.QUECTEL and self.ccinfo:
            self.urc(self._clcc_line('+QIND: "ccinfo",'))
        elif self.family is Family.SIMCOM and self.clcc_urc:
            self.urc(self._clcc_line("+CLCC: "))
            if call.stat == 0:
                self.urc("VOICE CALL: BEGIN")
        elif self.family is Family.HUAWEI:
            line = {2: f"^ORIG:{call.idx},0", 3: f"^CONF:{call.idx}", 0: f"^CONN:{call.idx},0"}.get(call.stat)
            if line:
                self.urc(line)

    async def _dial(self, number: str) -> None:
        if self.call is not None:
            self._error(3)
            return
        if self.is_emergency_number(number) and self.config.network in _EMERGENCY_CELLS:
            # Limited service or not: an emergency setup on any cell, whatever the SIM (TS 22.101 §10).
            self.far_end.dialled.append(number)
            self.emergency_calls.append(number)
            self.call = _Call(1, number, outgoing=True, stat=2, emergency=True)
            self._reply()
            self._spawn(self._outgoing(self.call))
            return
        if self.sim_state != "READY":
            self._error({"NOT INSERTED": 10, "SIM PUK": 12}.get(self.sim_state, 11))  # ordinary calls need the SIM
            return
        self.far_end.dialled.append(number)
        if not self.voice_network:
            # LTE without VoLTE, or no coverage: the modem accepts ATD, then the call drops at once.
            self._reply()
            await asyncio.sleep(self._delay(0.5))
            if self.family is Family.HUAWEI:
                self.urc("^CEND:1,0,104,34")
            self.urc("NO CARRIER")
            return
        self.call = _Call(1, number, outgoing=True, stat=2)
        self._reply()
        self._spawn(self._outgoing(self.call))

    async def _outgoing(self, call: _Call) -> None:
        if self.family is Family.HUAWEI:
            await asyncio.sleep(self._delay(0.5))  # ^ORIG takes a moment on the dongle
            if self.call is not call:
                return
        call.orig_sent = True
        self._call_urcs()
        self._maybe_audio()  # PCM from call setup on where the modem streams it then (silence at first)
        await asyncio.sleep(self._delay(1.0))
        if self.call is not call:
            return
        outcome = self.far_end.outcome
        if outcome is Outcome.UNREACHABLE:
            announcement = self.far_end.announcement
            if announcement is not None:
                # The network says why in-band while the call is still being set up, then clears it.
                call.network_audio = announcement
                await asyncio.sleep(self._delay(self.far_end.announcement_s))
                if self.call is not call:
                    return
            self._end_call(cause=1)
            return
        call.stat = 3
        call.network_audio = tones.ringback(self.pcm_rate)  # from its start: 1 s of tone first
        self._call_urcs()
        if outcome is Outcome.BUSY:
            await asyncio.sleep(self._delay(1.0))
            if self.call is call:
                self._end_call(cause=17)
            return
        wait = self.far_end.answer_after_s if outcome is Outcome.ANSWER else 30.0
        await asyncio.sleep(self._delay(wait))
        if self.call is not call:
            return
        if outcome is Outcome.NO_ANSWER:
            self._end_call(cause=19)
            return
        call.stat = 0
        call.answered_at = time.monotonic()
        self._call_urcs()
        self._maybe_audio()

    def incoming_call(self, number: str | None) -> None:
        """Someone calls the SIM's number (None: caller ID withheld)."""
        if self.call is not None:
            raise RuntimeError("the simulated modem already has a call")
        self.call = _Call(1, number or "", outgoing=False, stat=4)
        self._spawn(self._ring(self.call))

    async def _ring(self, call: _Call) -> None:
        for ring in range(self.config.max_rings):
            if self.call is not call or call.stat != 4:
                return
            self.urc("RING")
            if self.family is Family.V253:
                if ring == 0 and self.vcid:
                    self.urc("DATE = 1125")
                    self.urc("TIME = 0959")
                    self.urc(f"NMBR = {call.number or 'P'}")
            elif self.clip:
                toa = 145 if call.number.startswith("+") else 129
                validity = 0 if call.number else 1
                self.urc(f'+CLIP: "{call.number}",{toa},"",0,"",{validity}')
            if ring == 0:
                self._call_urcs()
            await asyncio.sleep(self._delay(self.config.ring_interval_s))
        if self.call is call and call.stat == 4:
            self.call = None
            if self.family is Family.SIMCOM:
                self.urc(f"MISSED_CALL: 09:59AM {call.number}")
            self.urc("NO CARRIER")

    async def _answer(self) -> None:
        call = self.call
        if call is None or call.outgoing or call.stat != 4:
            self._reply(final="NO CARRIER")
            return
        await asyncio.sleep(self._delay(1.5))  # ATA takes seconds on real modems
        if self.call is not call:
            self._reply(final="NO CARRIER")
            return
        call.stat = 0
        call.answered_at = time.monotonic()
        self._call_urcs()
        self._reply()
        self._maybe_audio()

    def hang_up_far_end(self) -> None:
        """The far end hangs up."""
        if self.call is not None:
            self._end_call(cause=16)

    def _end_call(self, cause: int, local: bool = False) -> None:
        call, self.call = self.call, None
        if call is None:
            return
        duration = int(time.monotonic() - call.answered_at) if call.answered_at else 0
        if not local and self.family is not Family.HUAWEI and self.family is not Family.V253:
            # The dial attempt's result code comes first, then the call list says the call is gone.
            self.urc({17: "BUSY", 19: "NO ANSWER"}.get(cause, "NO CARRIER"))
        if self.family is Family.QUECTEL and self.ccinfo:
            call.stat = 6
            self.call = call
            self.urc(self._clcc_line('+QIND: "ccinfo",'))
            self.call = None
        elif self.family is Family.SIMCOM and self.clcc_urc:
            call.stat = 6
            self.call = call
            self.urc(self._clcc_line("+CLCC: "))
            self.call = None
            if call.answered_at:
                self.urc(f"VOICE CALL: END: {duration // 3600:02d}{duration // 60 % 60:02d}{duration % 60:02d}")
        elif self.family is Family.HUAWEI:
            self.urc(f"^CEND:{call.idx},{duration},104,{cause}")
            return
        if self.family is Family.V253 and self.streaming:
            self._raw(dle.encode_event(dle.DleEvent.BUSY))

    async def _finish_cmgs(self, text: str) -> None:
        to, self.cmgs_to = self.cmgs_to, None
        await asyncio.sleep(self._delay(1.0))
        if to is None:
            return
        if not self.voice_network and self._cereg_stat()[0] != 1:
            self._reply(final="+CMS ERROR: 331")
            return
        self.sms_sent.append((to, text))
        self._reply(f"+CMGS: {len(self.sms_sent)}")

    def deliver_sms(self, sender: str, text: str) -> None:
        """An SMS arrives (text mode, routed straight to the host as with AT+CNMI=2,2)."""
        stamp = f"{self.config.network_time:%y/%m/%d,%H:%M:%S}+00"
        self._raw(f'\r\n+CMT: "{sender}","","{stamp}"\r\n{text}\r\n'.encode("latin-1"))

    async def _reset_after_reply(self) -> None:
        await asyncio.sleep(self._delay(0.2))
        await self.replug(cold=False)

    # ------------------------------------------------------------------ audio

    def _audio_enabled(self) -> bool:
        """Whether the modem sends PCM now."""
        call = self.call
        if call is None:
            return False
        on = {
            Family.QUECTEL: self.qpcmv,
            Family.SIMCOM: self.cpcmreg,
            Family.HUAWEI: self.ddsetex,
            Family.V253: self.streaming,
        }[self.family]
        if call.stat == 0:
            return on
        # Before the answer: an outgoing call the network has taken, on a modem whose PCM carries it.
        return on and call.outgoing and call.orig_sent and call.stat in (2, 3) and self.family in _EARLY_DOWNLINK

    def _maybe_audio(self) -> None:
        call = self.call
        if call is not None and not call.pcm and self._audio_enabled():
            call.pcm = True
            self._spawn(self._pcm_loop(call))

    def _on_audio_readable(self) -> None:
        port = self.audio_port
        if port is None:
            return
        data = port.read()
        # Before the answer nobody listens: the uplink reaches the far end once the call is active.
        answered = self.call is not None and self.call.stat == 0
        if data and answered and self._audio_enabled() and not self.pcm_degraded:
            self.far_end.heard += data

    def stall_stream(self, seconds: float) -> None:
        """The PCM stream stops for a while (the call stays up); math.inf: until the modem resets."""
        self.stall_until = time.monotonic() + seconds

    def drop_audio_bytes(self, count: int) -> None:
        """The next PCM frame loses count bytes at a random point, as a USB serial overrun does."""
        self.drop_next = count

    def stall_writes(self, seconds: float) -> None:
        """PCM is held back for a while, then arrives in one burst (the host could not read it)."""
        self.write_stall_until = time.monotonic() + seconds

    def _send_pcm(self, pcm: bytes) -> None:
        port = self.audio_port
        if port is None or port.closed:
            self._pcm_pending = b""
            return
        if self.drop_next:
            cut = self.rng.randrange(0, len(pcm) - self.drop_next + 1)
            pcm = pcm[:cut] + pcm[cut + self.drop_next :]
            self.drop_next = 0
            self.drops.append(time.monotonic())
        pending = self._pcm_pending + pcm
        if time.monotonic() < self.write_stall_until:
            self._pcm_pending = pending[-_PCM_BACKLOG:]
            return
        # A tty that takes part of the audio gets the rest next time, so samples stay whole unless a
        # fault is injected; what piles up beyond a second is dropped from the front (whole samples).
        written = port.write(pending)
        rest = pending[written:]
        self._pcm_pending = rest[len(rest) - min(len(rest), _PCM_BACKLOG) :]

    async def _pcm_loop(self, call: _Call) -> None:
        try:
            await self._pcm_frames(call)
        finally:
            call.pcm = False
            self._pcm_pending = b""  # the next call's audio starts on a fresh sample

    async def _pcm_frames(self, call: _Call) -> None:
        v253 = self.family is Family.V253
        samples = self.pcm_rate // 50  # 20 ms: 320 bytes at 8 kHz, 640 at 16 kHz
        period = 0.020 / (1 + self.config.drift_ppm * 1e-6)  # a fast modem clock sends more often
        start = time.monotonic()
        k = 0
        while self.call is call and self._audio_enabled():
            k += 1
            target = start + k * period + self.rng.uniform(0, self.config.jitter_ms / 1000)
            await asyncio.sleep(max(0.0, target - time.monotonic()))
            if self.call is not call or not self._audio_enabled():
                break
            if time.monotonic() < self.stall_until:
                continue
            if call.stat == 0:
                pcm = self.far_end.source.read(samples)
            elif call.network_audio is not None:
                pcm = call.network_audio.read(samples)  # ringback, an announcement
            else:
                pcm = bytes(2 * samples)  # call setup: the network plays nothing yet
            if self.pcm_degraded:
                pcm = bytes(len(pcm))
            if v253:
                self._raw(dle.encode(dle.s16le_to_u8(pcm)))
            else:
                self._send_pcm(pcm)

    # ------------------------------------------------------------------ V.253

    async def _v253(self, body: str, arg: str) -> None:
        if body.startswith("+FCLASS="):
            if body == "+FCLASS=?":
                self._reply("0,1,1.0,8")
            else:
                self.fclass = int(float(body[8:]))
                self._reply()
        elif body.startswith("+VCID="):
            self.vcid = body.endswith("1")
            self._reply()
        elif body.startswith(("+VSM=", "+VGT=", "+VGR=", "+VIT=", "+VSD=", "+VRA=", "+VRN=")):
            self._reply()
        elif body.startswith("+VLS="):
            if body.endswith("1") and self.fclass == 8:
                if self.call is not None and self.call.stat == 4:
                    self.call.stat = 0
                    self.call.answered_at = time.monotonic()
                await asyncio.sleep(self._delay(0.3))
                self._reply(final="VCON")
            else:
                if self.call is not None:
                    self.call = None
                self._reply()
        elif body in ("+VTR", "+VRX", "+VTX"):
            if self.fclass != 8 or self.call is None or self.call.stat != 0:
                self._reply(final="ERROR")
                return
            self._reply(final="CONNECT")
            self.streaming = True
            self._stream_in = dle.DleDecoder()
            self._maybe_audio()
        elif body == "+VTR=?":
            self._reply(final="ERROR")  # the notes: some full-duplex chips say this
        elif body.startswith("D"):
            number = arg[1:].lstrip("Tt").rstrip(";")
            self.far_end.dialled.append(number)
            await asyncio.sleep(self._delay(1.0))
            if self.far_end.outcome is Outcome.UNREACHABLE:
                self._reply(final="NO DIALTONE")
                return
            self.call = _Call(1, number, outgoing=True, stat=0, answered_at=time.monotonic())
            if self.far_end.outcome is Outcome.BUSY:
                self._spawn(self._v253_busy_later(self.call))
            self._reply(final="VCON")
        elif body in ("H", "H0"):
            self.call = None
            self._reply()
        else:
            self._reply(final="ERROR")

    async def _v253_busy_later(self, call: _Call) -> None:
        await asyncio.sleep(self._delay(1.5))
        if self.call is call:
            self._end_call(cause=17)

    def _on_stream_input(self, data: bytes) -> None:
        for item in self._stream_in.feed(data):
            if isinstance(item, bytes):
                self.far_end.heard += dle.u8_to_s16le(item)
            elif item in (dle.DleEvent.END_OF_STREAM,) or (isinstance(item, dle.Unknown) and chr(item.code) in "!^"):
                self.streaming = False
                self._raw(dle.encode_event(dle.DleEvent.END_OF_STREAM) + b"\r\nOK\r\n")

    def far_end_dtmf(self, digit: str) -> None:
        """The far end presses a key: in-band audio plus the family's detection report."""
        if self.family is Family.V253:
            if self.streaming:
                self._raw(dle.encode_event(dle.Dtmf(digit)))
        elif self.family is Family.QUECTEL:
            self.urc(f"+QTONEDET: {ord(digit)}")
        elif self.family is Family.SIMCOM:
            self.urc(f"+RXDTMF: {digit}")


def _link(link: Path, target: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        link.unlink()
    link.symlink_to(target)
