"""Runs Kamailio as a supervised child: renders its config, restarts it when it dies, stops it cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import structlog

from gateway.children import keep_running, start_child, stop_child
from gateway.config import Config
from gateway.errors import RpcError, SipError
from gateway.fsmode import write_private
from gateway.listeners import AsyncListeners
from gateway.sip.bindings import Binding, parse_dump
from gateway.sip.location import prepare_location
from gateway.sip.options import SipTarget
from gateway.sip.pair_table import PairTable
from gateway.sip.render import (
    EdgeKeys,
    RenderInputs,
    TlsInputs,
    cloud_destinations,
    find_module_path,
    kamailio_command,
    render,
    render_dispatcher,
)
from gateway.sip.rpc import KamailioRpc, item_value
from gateway.sip.shared_answer import SharedAnswer
from gateway.sip.tls import cloud_tls, tls_config

log = structlog.get_logger("kamailio")

READY_TIMEOUT = 15.0
SHM_MB, PAIR_SHM_MB = 64, 192  # Kamailio's shared memory (-m)
STOP_TIMEOUT = 10.0
EDGE_POLL_S = 5.0
# The longest a status waits for Kamailio's answers: one RPC's timeout (KamailioRpc's 3 s) and a second.
STATUS_WAIT_S = 4.0


class KamailioState(enum.StrEnum):
    """Life cycle of the Kamailio child."""

    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    STOPPING = "stopping"


def _htable(dump: Any) -> dict[str, int]:
    """An htable.dump of integer items as {key: value}."""
    items: dict[str, int] = {}
    for entry in dump or []:
        for slot in entry.get("slot") or []:
            if slot.get("type") == "int":
                items[str(slot["name"])] = int(slot["value"])
    return items


class KamailioSupervisor:
    """Owns the Kamailio process and its RPC channel."""

    def __init__(
        self,
        config: Config,
        *,
        port: int,
        cloud_host_ip: str | None,
        survival: Callable[[], bool],
        keys: EdgeKeys,
        tls: TlsInputs | None = None,
        cloud_port: int = 0,
        standby_ips: tuple[str, ...] = (),
    ) -> None:
        self.config = config
        self.cloud_port = cloud_port  # Lifeline's own socket towards the cloud (render.RenderInputs)
        self.standby_ips = standby_ips  # cloud.standby's addresses
        self._destinations: list[str] = []  # the SBCs as Kamailio's dispatcher names them, in order
        self._keys = keys
        self.tls = tls
        self.port = port
        self.cloud_host_ip = cloud_host_ip
        self.cloud_timers: tuple[int, int] | None = None  # set by the health monitor as the RTT is learnt
        self._survival = survival
        self.cfg_path = config.run_dir / "kamailio.cfg"
        self.rpc = KamailioRpc(config.run_dir / "kamailio-rpc.sock")
        self.state = KamailioState.STOPPED
        self.restarts = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._watch: asyncio.Task[None] | None = None
        self._pump: asyncio.Task[None] | None = None
        self._tail: deque[str] = deque(maxlen=30)
        self._module_path = find_module_path(config.sip.module_path)
        self.on_ban: AsyncListeners[[dict[str, Any]]] = AsyncListeners("ban")
        self._edge_watch: asyncio.Task[None] | None = None
        self._bans_seen: dict[str, int] = {}
        # What a status asks, once for every status asking at the same time (the page, /metrics, the CLI).
        self._edge_asked = SharedAnswer(self.edge)
        self._registrations_asked = SharedAnswer(self.registrations)

    @property
    def pid(self) -> int | None:
        """Pid of Kamailio's main process while it runs."""
        return self._proc.pid if self._proc and self._proc.returncode is None else None

    def _set_state(self, new: KamailioState, reason: str) -> None:
        old, self.state = self.state, new
        if old != new:
            log.info("kamailio state", old=old.value, new=new.value, reason=reason)

    def _write_config(self) -> None:
        inputs = RenderInputs(
            port=self.port,
            rpc_socket=self.rpc.server,
            db_path=self.config.db_path,
            survival=self._survival(),
            module_path=self._module_path,
            cloud_host_ip=self.cloud_host_ip,
            keys=self._keys,
            tls=self.tls,
            cloud_timers=self.cloud_timers,
            cloud_port=self.cloud_port,
            standby_ips=self.standby_ips,
        )
        write_private(self.cfg_path, render(self.config, inputs))  # 0600 from its first byte: it holds a secret
        write_private(inputs.dispatcher_path, render_dispatcher(self.config, inputs))
        self._destinations = cloud_destinations(self.config, inputs)
        if self.tls is not None:
            write_private(self.tls.config_path, tls_config(self.tls.files, cloud_tls(self.config)))

    async def start(self) -> None:
        """Start Kamailio and wait until it answers RPC; SipError if it cannot."""
        cloud_tls(self.config)  # a missing cloud.ca_file stops the start, TLS listener or not
        sbc = self.config.cloud.sbc
        if sbc is not None and SipTarget.from_uri(sbc).transport == "tls" and not self.config.cloud.tls_verify:
            log.warning("the cloud's TLS certificate is not checked (cloud.tls_verify = false)", sbc=sbc)
        await self._spawn("start")
        self._watch = asyncio.create_task(self._supervise(), name="kamailio-supervisor")
        self._edge_watch = asyncio.create_task(self._watch_edge(), name="kamailio-edge")

    async def _spawn(self, reason: str) -> None:
        self._set_state(KamailioState.STARTING, reason)
        # Rendered on every start so a restart comes up in the current mode at once.
        self._write_config()
        # usrloc loads the bindings it wrote back before a restart (or makes its file on the first start).
        await asyncio.to_thread(prepare_location, self.config.db_path)
        with contextlib.suppress(FileNotFoundError):
            self.rpc.server.unlink()
        # A pair box keeps a DMQ transaction per registration change until tm's wait timer ends: a storm of
        # 2,000 REGISTERs/s held more than 64 MB of them (bench/ha). Only the pages used are ever touched.
        shm_mb = PAIR_SHM_MB if self.config.ha.enabled else SHM_MB
        args = kamailio_command(self.config.sip.kamailio, self.cfg_path, self.config.run_dir, shm_mb)
        try:
            self._proc = await start_child(args)
        except OSError as err:
            raise SipError(f"sip.kamailio = {self.config.sip.kamailio!r}: cannot start: {err}") from err
        self._pump = asyncio.create_task(self._pump_output(self._proc), name="kamailio-output")
        try:
            await self._wait_ready()
        except SipError:
            await self._terminate()
            raise
        self._set_state(KamailioState.RUNNING, f"pid {self._proc.pid} answers RPC")

    async def _wait_ready(self) -> None:
        assert self._proc is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT
        while loop.time() < deadline:
            if self._proc.returncode is not None:
                break
            if self.rpc.server.exists():
                with contextlib.suppress(RpcError):
                    await self.rpc.call("core.version")
                    return
            await asyncio.sleep(0.1)
        tail = "\n".join(self._tail)
        raise SipError(f"Kamailio did not come up (exit code {self._proc.returncode}):\n{tail}")

    async def _pump_output(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            if not line:
                continue
            self._tail.append(line)
            if " ERROR:" in line or " CRITICAL:" in line or " ALERT:" in line:
                log.error("kamailio", line=line)
            elif " WARNING:" in line or " NOTICE:" in line:
                log.info("kamailio", line=line)
            else:
                log.debug("kamailio", line=line)

    async def _supervise(self) -> None:
        def exited_with(code: int, backoff: float) -> None:
            self.restarts += 1
            self._set_state(KamailioState.BACKOFF, f"exited with code {code}; restart in {backoff:.0f} s")

        async def respawn(code: int) -> None:
            await self._spawn(f"restart #{self.restarts} after exit code {code}")

        stopping = (KamailioState.STOPPING, KamailioState.STOPPED)
        await keep_running(
            lambda: self._proc, lambda: self.state in stopping, exited_with, respawn, SipError, "kamailio"
        )

    async def set_cloud_timers(self, wait_ms: int, t1_ms: int) -> None:
        """The per-request fallback's wait for the cloud's first answer, and tm's first resend to it."""
        self.cloud_timers = (wait_ms, t1_ms)  # a restarted Kamailio renders them
        try:
            await self.rpc.call("pv.shvSet", "cloud_wait", "int", wait_ms)
            await self.rpc.call("pv.shvSet", "cloud_t1", "int", t1_ms)
        except RpcError as err:
            log.warning("fallback wait not pushed to kamailio", error=str(err), state=self.state.value)

    async def set_sbc_states(self, up: list[bool]) -> None:
        """Mark each cloud SBC up or down in Kamailio's dispatcher, as the daemon's probes see it."""
        try:
            for uri, ok in zip(self._destinations, up, strict=False):
                # Pushed every round: a request that failed on an SBC marked it down, the probes have the last word.
                await self.rpc.call("dispatcher.set_state", "a" if ok else "i", 1, uri)
        except RpcError as err:
            log.debug("SBC states not pushed to kamailio", error=str(err), state=self.state.value)

    async def replace_cloud(self, config: Config, cloud_host_ip: str | None, standby_ips: tuple[str, ...]) -> None:
        """A new SBC list (cloud.sbc's SRV answer changed): Kamailio restarts with it, as its config names them."""
        self.config, self.cloud_host_ip, self.standby_ips = config, cloud_host_ip, standby_ips
        if self.state is not KamailioState.RUNNING or self._watch is None:
            return  # the restart under way renders the new list
        # Dialogs outlive the restart (Record-Route is signed with a kept key, usrloc is written back).
        self._watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._watch
        await self._terminate()
        try:
            await self._spawn("the cloud's SBC list changed")
        except SipError as err:
            log.error("kamailio restart with the new SBC list failed", error=str(err))
        self._watch = asyncio.create_task(self._supervise(), name="kamailio-supervisor")

    async def apply_mode(self, survival: bool) -> None:
        """Flip Kamailio between relaying to the cloud and serving locally, without a restart."""
        try:
            # The flag alone: SURVIVAL's shorter bindings follow from it per REGISTER (kamailio.cfg.tmpl).
            await self.rpc.call("pv.shvSet", "survival", "int", 1 if survival else 0)
        except RpcError as err:
            # A Kamailio that is restarting renders the current mode when it comes back.
            log.warning("mode not pushed to kamailio", error=str(err), state=self.state.value)

    async def serving_locally(self) -> bool | None:
        """Whether Kamailio serves phones locally now ($shv(survival)); None when it does not answer."""
        try:
            value = await self.rpc.call("pv.shvGet", "survival")
        except RpcError:
            return None
        return int(item_value(value) or 0) == 1

    def pair_table(self) -> PairTable:
        """The pair's mode table in this Kamailio ([ha]: replicated to the peer by DMQ)."""
        # A client of its own, quick to give up: its rounds must not queue the status's calls behind them
        # while Kamailio does not answer.
        return PairTable(KamailioRpc(self.rpc.server, timeout=1.0))

    async def drop_bindings(self, number: str) -> None:
        """Forget every binding of this extension now (none: nothing to do)."""
        with contextlib.suppress(RpcError):  # usrloc answers an error when there is no binding
            await self.rpc.call("ul.rm", "location", number)

    async def registrations(self) -> dict[str, Any]:
        """Counts of registered users and contacts, from usrloc's statistics."""
        stats = await self.rpc.call("stats.get_statistics", "usrloc:")
        result: dict[str, Any] = {}
        for item in stats or []:
            name, _, value = str(item).partition(" = ")
            result[name.removeprefix("usrloc:")] = int(value)
        return {"users": result.get("registered_users", 0), "contacts": result.get("location_contacts", 0)}

    async def bindings(self) -> list[Binding]:
        """Every live registered contact, from usrloc's dump (no secret is in it)."""
        return parse_dump(await self.rpc.call_bulk("ul.dump"))  # any number of phones

    async def edge(self) -> dict[str, Any]:
        """Banned addresses (until when, bans today) and failed logins per extension and per source."""
        bans = _htable(await self.rpc.call_bulk("htable.dump", "ban"))
        levels = _htable(await self.rpc.call_bulk("htable.dump", "banlevel"))
        now = time.time()
        return {
            "bans": [
                {"address": address, "until": until, "bans": max(1, levels.get(address, 1))}
                for address, until in sorted(bans.items())
                if until > now  # htable drops an expired item on its next timer run
            ],
            "failed_logins": _htable(await self.rpc.call_bulk("htable.dump", "authfail_ext")),
            "failing_sources": _htable(await self.rpc.call_bulk("htable.dump", "authfail")),
        }

    async def edge_within(self, seconds: float) -> dict[str, Any] | None:
        """edge(), or None when Kamailio does not answer it within seconds (a status shows none then)."""
        return await self._edge_asked.within(seconds)

    async def registrations_within(self, seconds: float) -> dict[str, Any] | None:
        """registrations(), or None when Kamailio does not answer them within seconds."""
        return await self._registrations_asked.within(seconds)

    async def _watch_edge(self) -> None:
        # Kamailio bans by itself; the daemon hears of each new ban from its table within a poll.
        while True:
            await asyncio.sleep(EDGE_POLL_S)
            if self.state is not KamailioState.RUNNING:
                continue
            try:
                bans = (await self.edge())["bans"]
            except RpcError:
                continue
            self._bans_seen = {a: u for a, u in self._bans_seen.items() if u > time.time()}
            for ban in bans:
                if self._bans_seen.get(ban["address"]) != ban["until"]:
                    self._bans_seen[ban["address"]] = ban["until"]
                    await self.on_ban.emit(ban)

    async def _terminate(self) -> None:
        await stop_child(self._proc, STOP_TIMEOUT, "kamailio")

    async def stop(self) -> None:
        """Stop Kamailio cleanly (SIGTERM, then SIGKILL after a grace period)."""
        self._set_state(KamailioState.STOPPING, "daemon stopping")
        for task in (self._watch, self._edge_watch):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._terminate()
        self._set_state(KamailioState.STOPPED, "stopped")

    def status(self) -> dict[str, Any]:
        """State, pid, restarts and where its config is."""
        return {
            "state": self.state.value,
            "pid": self.pid,
            "restarts": self.restarts,
            "config": str(self.cfg_path),
            "rpc_socket": str(self.rpc.server),
        }
