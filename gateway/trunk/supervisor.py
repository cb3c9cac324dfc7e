"""The daemon's side of the trunk: runs the agent process, restarts it, points Kamailio at it, SMS alerts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from gateway.cdr.records import ClockKind
from gateway.config import Config
from gateway.core.alerts import Alert, AlertDeliveryError
from gateway.core.probes import lan_address
from gateway.hw.patterns import TrunkView
from gateway.store import Store
from gateway.trunk.errors import TrunkError

log = structlog.get_logger("trunk.supervisor")


STATUS_EVERY_S = 2.0
EMERGENCY_WAIT_S = 25.0  # one long poll of the agent's emergency events; it answers at once when one is dialled


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
        self.state = "stopped"
        self.problem: str | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._inbox_seen = time.time()
        self._events_seen = time.time()
        self._limits_seen = time.time()
        self.on_sms: Callable[[dict[str, Any]], Awaitable[None]] | None = None
        self.on_limit: Callable[[dict[str, Any]], Awaitable[None]] | None = None  # a toll-fraud limit tripped
        self.on_emergency: Callable[[dict[str, Any]], Awaitable[None]] | None = None  # an emergency number dialled
        self._emergency_seen = time.time()
        self.last_status: dict[str, Any] = {}
        self.clock = ModemNetworkClock()

    def _credentials(self) -> tuple[str, str, str]:
        extension = self.config.trunk.extension
        column = "ha1" if self.config.sip.auth_algorithm == "MD5" else "ha1_sha256"
        with self.store.read() as conn:
            row = conn.execute(
                f"SELECT auth_user, realm, {column} FROM extensions WHERE number = ?", [extension]
            ).fetchone()
        if row is not None:
            return str(row[0]), str(row[1]), str(row[2])
        raise TrunkError(f"trunk.extension = {extension!r}: no such extension (import it like a phone)")

    async def start(self, sip_port: int, caller_key: str) -> None:
        """Start the agent (registering to Kamailio on sip_port; caller_key checks Kamailio's stamp)."""
        self.sip_port, self._caller_key = sip_port, caller_key
        self._task = asyncio.create_task(self._run(), name="trunk-supervisor")

    async def stop(self) -> None:
        """Stop the agent (SIGTERM, then SIGKILL)."""
        self._stopping = True
        await self._terminate()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

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
                self.state, self.problem = "failed", str(err)
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
            self._proc = await asyncio.create_subprocess_exec(*cmd, stdin=asyncio.subprocess.PIPE)
            assert self._proc.stdin is not None
            self._proc.stdin.write(json.dumps(secrets).encode() + b"\n")
            await self._proc.stdin.drain()
            self._proc.stdin.close()
            self.pid, self.state, self.problem = self._proc.pid, "running", None
            log.info("trunk agent started", pid=self.pid, extension=self.config.trunk.extension)
            watch = asyncio.create_task(self._watch())
            emergencies = asyncio.create_task(self._emergency_events())
            try:
                code = await self._proc.wait()
            finally:  # also when the supervisor itself is stopped: no poll outlives its agent
                watch.cancel()
                emergencies.cancel()
            if self._stopping:
                break
            self.restarts += 1
            self.state = "restarting"
            log.error("trunk agent exited; restarting", code=code, restarts=self.restarts)
            await asyncio.to_thread(
                self.store.add_event, "trunk", f"trunk agent exited (code {code}); restarting", {"code": code}
            )
            await asyncio.sleep(min(30.0, 1.0 * self.restarts))

    async def _watch(self) -> None:
        # Forward incoming SMS; keep the agent's status at hand for the LEDs (the health loop
        # cannot wait for it). Kamailio has the agent's extension in its rendered config.
        while True:
            await self._forward_inbox()
            with contextlib.suppress(TrunkError):
                self.last_status = await self.request("GET", "/status", limit=2.0)
                self.clock.report(self.last_status)
            await self._record_link_events()
            await self._record_limit_events()
            await asyncio.sleep(STATUS_EVERY_S)

    def view(self) -> TrunkView:
        """What the trunk LED shows: usable when a modem is ready; bars of the best GSM signal."""
        modems = self.last_status.get("modems") or [] if self.state == "running" else []
        ready = [m for m in modems if m.get("state") == "ready"]
        analog = bool(modems) and all(m.get("family") == "v253" for m in modems)
        bars = max(((m.get("signal") or {}).get("bars") or 0 for m in ready), default=0)
        return TrunkView(kind="analog" if analog else "gsm", usable=bool(ready), bars=int(bars))

    async def _record_link_events(self) -> None:
        # The agent keeps each modem's falls and recoveries; a poll alone would miss a quick reset.
        with contextlib.suppress(TrunkError):
            for event in await self.request("GET", f"/link-events?since={self._events_seen}", limit=2.0):
                self._events_seen = max(self._events_seen, float(event["at"]))
                await asyncio.to_thread(self.store.add_event, "trunk", link_event_message(event), event)

    async def _record_limit_events(self) -> None:
        # A per-extension rate, concurrency or the daily cap refused a call: an event, and the daemon's alert.
        with contextlib.suppress(TrunkError):
            for event in await self.request("GET", f"/limit-events?since={self._limits_seen}", limit=2.0):
                self._limits_seen = max(self._limits_seen, float(event["at"]))
                await asyncio.to_thread(self.store.add_event, "trunk", limit_event_message(event), event)
                if self.on_limit is not None:
                    await self.on_limit(event)

    async def _emergency_events(self) -> None:
        # A long poll rather than the 2 s status poll: the front desk hears of an emergency call
        # within milliseconds of the dial, and the agent stays the one that never waits on the daemon.
        while True:
            try:
                path = f"/emergency-events?since={self._emergency_seen}&wait={EMERGENCY_WAIT_S}"
                events = await self.request("GET", path, limit=EMERGENCY_WAIT_S + 5)
            except TrunkError:
                await asyncio.sleep(0.2)  # the agent is starting or restarting
                continue
            for event in events:
                self._emergency_seen = max(self._emergency_seen, float(event["at"]))
                if self.on_emergency is not None:
                    try:
                        await self.on_emergency(event)
                    except Exception:  # one failed notice must not stop the next
                        log.exception("emergency notification failed", call=event.get("call"))

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

    async def _forward_inbox(self) -> None:
        if self.on_sms is None:
            return
        with contextlib.suppress(TrunkError):
            messages = await self.request("GET", f"/sms/inbox?since={self._inbox_seen}")
            for message in messages:
                self._inbox_seen = max(self._inbox_seen, float(message["received"]))
                await self.on_sms(message)

    async def request(self, method: str, path: str, body: Any = None, limit: float = 5.0) -> Any:
        """Call the agent's control API over its unix socket."""
        try:
            connector = aiohttp.UnixConnector(path=str(self.socket))
            async with (
                aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=limit)) as session,
                session.request(method, f"http://trunk{path}", json=body) as response,
            ):
                data = await response.json()
                if response.status >= 400:
                    raise TrunkError(f"trunk agent: {data.get('error', response.status)}")
                return data
        except (aiohttp.ClientError, OSError, TimeoutError) as err:
            raise TrunkError(f"trunk agent unreachable: {err}") from err

    async def status(self) -> dict[str, Any]:
        """The agent's status, or why there is none."""
        base = {"state": self.state, "pid": self.pid, "restarts": self.restarts, "problem": self.problem}
        if self.state == "running":
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
