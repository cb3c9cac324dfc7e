"""The daemon's side of the trunk: runs the agent process, restarts it, points Kamailio at it, SMS alerts."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from gateway import unixjson
from gateway.backoff import full_jitter
from gateway.cdr.records import ClockKind
from gateway.children import die_with_parent
from gateway.config import Config
from gateway.core.alerts import Alert, AlertDeliveryError
from gateway.core.probes import lan_address
from gateway.hw.patterns import TrunkView
from gateway.listeners import AsyncListeners
from gateway.mirror import repository as directory
from gateway.store import Store
from gateway.trunk.errors import TrunkError

log = structlog.get_logger("trunk.supervisor")
Queue = asyncio.Queue[dict[str, Any]]


STATUS_EVERY_S = 2.0
SILENCE_S = 15.0  # the agent's event stream sends a keepalive every 5 s: this long without a line, it is hung
RECONNECT_BASE_S, RECONNECT_MAX_S = 0.1, 1.0  # to the event stream while the agent (re)starts: soon after it is up


class ModemNetworkClock:
    """The network's time (NITZ, read by the agent with AT+CCLK?) as a clock source for call records.

    In an outage NTP is gone with the WAN, and a Pi has no battery clock: after a power cut its
    wall clock may say 1970. The mobile network still tells the time. This source answers from the
    agent's last status report, advanced by the monotonic clock, while that report is fresh.
    """

    kind = ClockKind.NETWORK

    def __init__(self, monotonic: Callable[[], float] = time.monotonic, max_age_s: float = 5 * STATUS_EVERY_S) -> None:
        self._monotonic = monotonic
        self.max_age_s = max_age_s
        self._reading: tuple[float, float] | None = None  # (network epoch, monotonic when reported)

    def report(self, status: dict[str, Any]) -> None:
        """Take the network time from an agent status report (the first modem that has one)."""
        for modem in status.get("modems") or []:
            value = modem.get("network_now")
            if isinstance(value, int | float) and value > 0:
                self._reading = (float(value), self._monotonic())
                return

    def now(self) -> float | None:
        """The network's UTC epoch now, or None without a fresh report."""
        if self._reading is None:
            return None
        value, at = self._reading
        age = self._monotonic() - at
        return value + age if 0 <= age <= self.max_age_s else None


def link_event_message(event: dict[str, Any]) -> str:
    """The status page's line for a modem leaving or reaching READY (the agent reports each one)."""
    message = f"modem {event.get('modem')}: {event.get('old')} → {event.get('new')}"
    why = event.get("problem") or (event.get("reason") if event.get("new") != "ready" else None)
    return f"{message} ({why})" if why else message


def limit_event_message(event: dict[str, Any]) -> str:
    """The status page's line for a call a toll-fraud limit refused (the number is already masked)."""
    return (
        f"trunk limit {event.get('rule')}: extension {event.get('extension')} refused "
        f"({event.get('answer')}) calling {event.get('number')}"
    )


class AgentState(enum.StrEnum):
    """Life cycle of the trunk agent process, as the status, the status page and /metrics show it."""

    STOPPED = "stopped"  # not started yet
    RUNNING = "running"
    RESTARTING = "restarting"  # it exited; started again after a back-off
    FAILED = "failed"  # cannot start (no credentials for trunk.extension); tried again later


class TrunkSupervisor:
    """Keeps one trunk agent process running, and forwards its events to the daemon."""

    def __init__(self, config: Config, config_path: Path | None, store: Store) -> None:
        self.config = config
        self.config_path = config_path
        self.store = store
        self.sip_port = 0
        self._caller_key = ""
        self.socket = config.run_dir / "trunk.sock"
        self.restarts = 0
        self.pid: int | None = None
        self.state = AgentState.STOPPED
        self.problem: str | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._stream: tuple[str, int] = ("", 0)  # the agent's boot id and the last event number read from it
        self._event_tasks: list[asyncio.Task[None]] = []
        self.on_sms: AsyncListeners[[dict[str, Any]]] = AsyncListeners("trunk sms")
        self.on_limit: AsyncListeners[[dict[str, Any]]] = AsyncListeners("trunk limit")  # a toll-fraud limit tripped
        self.on_emergency: AsyncListeners[[dict[str, Any]]] = AsyncListeners("emergency")  # an emergency number dialled
        self.last_status: dict[str, Any] = {}
        self.clock = ModemNetworkClock()

    def _set_state(self, new: AgentState, reason: str) -> None:
        old, self.state = self.state, new
        if old is not new:
            log.info("trunk agent state", old=old.value, new=new.value, reason=reason)

    def _credentials(self) -> tuple[str, str, str]:
        extension = self.config.trunk.extension
        with self.store.read() as conn:
            found = directory.sip_credentials(conn, extension or "", self.config.sip.auth_algorithm)
        if found is not None:
            return found
        raise TrunkError(f"trunk.extension = {extension!r}: no such extension (import it like a phone)")

    async def start(self, sip_port: int, caller_key: str) -> None:
        """Start the agent (registering to Kamailio on sip_port; caller_key checks Kamailio's stamp)."""
        self.sip_port, self._caller_key = sip_port, caller_key
        self._task = asyncio.create_task(self._run(), name="trunk-supervisor")
        self.follow_events()

    def follow_events(self) -> None:
        """Read the agent's event stream, whichever agent process serves the socket, until stop()."""
        # The event stream outlives each agent process: it resumes on the next one, and nothing read
        # but not yet handled is dropped. Emergencies have a lane of their own: never behind an SMS alert.
        emergencies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        others: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._event_tasks = [
            asyncio.create_task(self._follow_events(emergencies, others), name="trunk-events"),
            asyncio.create_task(self._handle_events(emergencies), name="trunk-emergencies"),
            asyncio.create_task(self._handle_events(others), name="trunk-other-events"),
        ]

    async def stop(self) -> None:
        """Stop the agent (SIGTERM, then SIGKILL)."""
        self._stopping = True
        await self._terminate()
        for task in [self._task, *self._event_tasks]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _terminate(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            async with asyncio.timeout(10):
                await proc.wait()
        except TimeoutError:
            # Killed, its calls are not hung up nor its modems put on hook: something held it.
            log.warning("trunk agent did not stop within 10 s: killed", pid=proc.pid)
            proc.kill()
            await proc.wait()
        log.info("trunk agent stopped", pid=proc.pid, exit_code=proc.returncode)

    def _media_host(self) -> str:
        # Kamailio relays no media: the phones send their audio straight to the agent, so it must
        # listen where they reach this box (sip.listen, or the LAN side when that is every address).
        listen = self.config.sip.listen
        if listen != "0.0.0.0":
            return listen
        try:
            return lan_address(Path("/proc/net/route").read_text()) or "0.0.0.0"
        except OSError:
            return "0.0.0.0"

    async def _run(self) -> None:
        while not self._stopping:
            try:
                auth_user, realm, ha1 = await asyncio.to_thread(self._credentials)
            except TrunkError as err:
                self.problem = str(err)
                self._set_state(AgentState.FAILED, str(err))
                log.error("trunk agent not started", error=str(err))
                await asyncio.sleep(30)
                continue
            secrets = {
                "sip_host": self.config.sip.listen if self.config.sip.listen != "0.0.0.0" else "127.0.0.1",
                "media_host": await asyncio.to_thread(self._media_host),
                "sip_port": self.sip_port,
                "auth_user": auth_user,
                "realm": realm,
                "ha1": ha1,
                "control_socket": str(self.socket),
                "caller_key": self._caller_key,
            }
            cmd = [sys.executable, "-m", "gateway.trunk.agent"]
            if self.config_path is not None:
                cmd += ["--config", str(self.config_path)]
            self._proc = await asyncio.create_subprocess_exec(
                *cmd, stdin=asyncio.subprocess.PIPE, preexec_fn=die_with_parent
            )
            assert self._proc.stdin is not None
            self._proc.stdin.write(json.dumps(secrets).encode() + b"\n")
            await self._proc.stdin.drain()
            self._proc.stdin.close()
            self.pid, self.problem = self._proc.pid, None
            self._set_state(AgentState.RUNNING, f"started as pid {self.pid}")
            log.info("trunk agent started", pid=self.pid, extension=self.config.trunk.extension)
            watch = asyncio.create_task(self._watch())
            try:
                code = await self._proc.wait()
            finally:  # also when the supervisor itself is stopped: no poll outlives its agent
                watch.cancel()
            if self._stopping:
                break
            self.restarts += 1
            self._set_state(AgentState.RESTARTING, f"exited with code {code}")
            log.error("trunk agent exited; restarting", code=code, restarts=self.restarts)
            await asyncio.to_thread(
                self.store.add_event, "trunk", f"trunk agent exited (code {code}); restarting", {"code": code}
            )
            await asyncio.sleep(min(30.0, 1.0 * self.restarts))

    async def _watch(self) -> None:
        # Keep the agent's status at hand for the LEDs and the network clock (the health loop cannot
        # wait for it). A snapshot, not events: a poll of the latest is what they want, and a missed
        # one costs nothing. Kamailio has the agent's extension in its rendered config.
        while True:
            with contextlib.suppress(TrunkError):
                self.last_status = await self.request("GET", "/status", limit=2.0)
                self.clock.report(self.last_status)
            await asyncio.sleep(STATUS_EVERY_S)

    def view(self) -> TrunkView:
        """What the trunk LED shows: usable when a modem is ready; bars of the best GSM signal."""
        modems = self.last_status.get("modems") or [] if self.state is AgentState.RUNNING else []
        ready = [m for m in modems if m.get("state") == "ready"]
        analog = bool(modems) and all(m.get("family") == "v253" for m in modems)
        bars = max(((m.get("signal") or {}).get("bars") or 0 for m in ready), default=0)
        return TrunkView(kind="analog" if analog else "gsm", usable=bool(ready), bars=int(bars))

    async def _follow_events(self, emergencies: Queue, others: Queue) -> None:
        # One stream of the agent's events (GET /events, JSON lines), read as they happen: a modem's
        # fall and return however quick, every limit trip and SMS once, an emergency call at once.
        failures = 0
        while True:
            boot, seq = self._stream
            try:
                await unixjson.follow(
                    self.socket,
                    f"/events?boot={boot}&since={seq}",
                    SILENCE_S,
                    lambda e: self._take(e, emergencies, others),
                )
                failures = 0  # the agent ended the stream: it stops or restarts
            except unixjson.UnixApiError as err:
                if self._stream[0] != boot or self._stream[1] != seq:
                    failures = 0  # it was flowing: a restart or a hang, not an agent that is not up yet
                if not isinstance(err, unixjson.NotConnectedError):
                    log.warning("trunk agent event stream broken; reconnecting", error=str(err))
            failures += 1
            await asyncio.sleep(full_jitter(failures, RECONNECT_BASE_S, RECONNECT_MAX_S))

    def _take(self, event: dict[str, Any], emergencies: Queue, others: Queue) -> None:
        kind = event.get("kind")
        if kind == "hello":
            if event.get("boot") != self._stream[0]:
                log.info("trunk agent event stream", boot=event.get("boot"), since=event.get("seq"))
            self._stream = (str(event.get("boot")), int(event.get("seq") or 0))
            return
        if kind == "keepalive" or not isinstance(event.get("seq"), int):
            return
        self._stream = (self._stream[0], int(event["seq"]))
        (emergencies if kind == "emergency" else others).put_nowait(event)

    async def _handle_events(self, queue: Queue) -> None:
        while True:
            event = await queue.get()
            try:
                await self._handle(event)
            except Exception:  # one failed event (a notice, an alert) must not stop the next
                log.exception("trunk agent event not handled", kind=event.get("kind"), call=event.get("call"))

    async def _handle(self, event: dict[str, Any]) -> None:
        kind = event.pop("kind")
        event.pop("seq")
        if kind == "link":
            await asyncio.to_thread(self.store.add_event, "trunk", link_event_message(event), event)
        elif kind == "limit":
            # A per-extension rate, concurrency or the daily cap refused a call: an event, and the daemon's alert.
            await asyncio.to_thread(self.store.add_event, "trunk", limit_event_message(event), event)
            await self.on_limit.emit(event)
        elif kind == "sms":
            await self.on_sms.emit(event)
        elif kind == "emergency":
            await self.on_emergency.emit(event)

    async def send_message(self, extensions: list[str], text: str) -> dict[str, str]:
        """SIP MESSAGEs to extensions, sent by the agent's SIP account through Kamailio."""
        reply = await self.request("POST", "/message", {"to": extensions, "text": text}, limit=5.0)
        return dict(reply["results"])

    async def ring(self, extensions: list[str], display: str, caller: str, ring_s: int) -> dict[str, str]:
        """Ring extensions for up to ring_s, display and caller in From (the agent's SIP account, through Kamailio).

        Answers with each phone's first reply (ringing, a refusal), within a second (gateway/trunk/alerting.py).
        """
        body = {"to": extensions, "display": display, "caller": caller, "ring_s": ring_s}
        reply = await self.request("POST", "/ring", body, limit=5.0)
        return dict(reply["results"])

    async def request(self, method: str, path: str, body: Any = None, limit: float = 5.0) -> Any:
        """Call the agent's control API over its unix socket."""
        try:
            reply = await unixjson.request(self.socket, method, path, body, limit_s=limit)
        except unixjson.UnixApiError as err:
            raise TrunkError(f"trunk agent unreachable: {err}") from err
        if reply.status >= 400 or reply.data is None:
            error = reply.data.get("error") if isinstance(reply.data, dict) else None
            raise TrunkError(f"trunk agent: {error or reply.status}")
        return reply.data

    async def status(self) -> dict[str, Any]:
        """The agent's status, or why there is none."""
        base = {"state": self.state.value, "pid": self.pid, "restarts": self.restarts, "problem": self.problem}
        if self.state is AgentState.RUNNING:
            with contextlib.suppress(TrunkError):
                base.update(await self.request("GET", "/status", limit=2.0))
        return base

    async def send_sms(self, numbers: list[str], text: str) -> dict[str, str]:
        """Send an SMS through the agent's modems."""
        reply = await self.request("POST", "/sms", {"numbers": numbers, "text": text}, limit=60.0)
        return dict(reply["results"])


class SmsChannel:
    """Alerts as SMS to the administrators' numbers, through the trunk."""

    name = "sms"

    def __init__(self, supervisor: TrunkSupervisor, numbers: tuple[str, ...]) -> None:
        self.supervisor = supervisor
        self.numbers = list(numbers)

    async def send(self, alert: Alert) -> None:
        """Deliver to every number or raise AlertDeliveryError (the queue retries)."""
        try:
            results = await self.supervisor.send_sms(self.numbers, f"Lifeline: {alert.text()}"[:160])
        except TrunkError as err:
            raise AlertDeliveryError(str(err)) from err
        failed = {n: r for n, r in results.items() if r != "sent"}
        if failed:
            raise AlertDeliveryError(f"SMS not sent: {failed}")
