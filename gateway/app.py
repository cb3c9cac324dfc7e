"""Composition root: builds the parts of the daemon, starts them, and stops them in order."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import time
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from gateway import __version__
from gateway.cdr.clock import ClockSource, SystemHost, SystemNtpClock
from gateway.cdr.service import CdrService
from gateway.config import Config
from gateway.core.alerts import Alert, AlertChannel, AlertQueue, WebhookChannel
from gateway.core.failover import FailoverPolicy
from gateway.core.fallback import FallbackTimers
from gateway.core.health import HealthMonitor, build_probes
from gateway.core.mode import Mode, ModeController
from gateway.drill.routes import add_drill_routes
from gateway.drill.service import DrillService
from gateway.emergency import build_notice, lookup_caller, notify_extensions
from gateway.errors import ConfigError
from gateway.fsmode import private_dir
from gateway.ha.pair import Pair
from gateway.hw.controller import HardwareController, Health
from gateway.hw.heartbeat import Heartbeat, power_faults, storage_faults
from gateway.hw.patterns import FaultClass
from gateway.hw.watchdog import SystemdNotifier
from gateway.mirror.build import build_source
from gateway.mirror.service import MirrorService
from gateway.sip.call_ends import pair_calls
from gateway.sip.cloud_list import CloudSbcs
from gateway.sip.cloud_side import cloud_port
from gateway.sip.render import TlsInputs, edge_keys, free_port
from gateway.sip.supervisor import STATUS_WAIT_S, KamailioState, KamailioSupervisor
from gateway.sip.tls import tls_files
from gateway.store import Store
from gateway.trunk.supervisor import SmsChannel, TrunkSupervisor, limit_event_message
from gateway.web import phones
from gateway.web.api import add_mirror_routes, add_trunk_routes, build_api
from gateway.web.network import NetworkApi
from gateway.web.openapi import add_openapi_route
from gateway.web.tokens import TokenStore, add_token_routes
from gateway.web.ui.page import StatusPage

log = structlog.get_logger("app")


class App:
    """The running daemon."""

    def __init__(self, config: Config, config_path: Path | None) -> None:
        self.config = config
        self.config_path = config_path
        self.started = time.time()
        for directory in (config.data_dir, config.run_dir):
            private_dir(directory)
        self.store = Store(config.db_path)
        self.mode = ModeController(self.store, FailoverPolicy(config.health))
        self.phones = phones.PhoneList(self)  # the status's list of registered phones, built at most every few s
        sip_probe, other_probes = build_probes(config)
        self.health = HealthMonitor(config, self.mode, sip_probe, other_probes)
        self.cloud = CloudSbcs(config, self.store)  # the SBC list: configured, or an SRV name's kept fresh
        # The GSM/LTE/analog trunk: its agent runs as a child process; alerts also go out as SMS.
        self.trunk = TrunkSupervisor(config, config_path, self.store) if config.trunk.modems else None
        channels = _alert_channels(config)
        if self.trunk is not None and config.trunk.sms_admins:
            channels.append(SmsChannel(self.trunk, config.trunk.sms_admins))
        self.alerts = AlertQueue(self.store, channels, config.alerts.retry_max_s)
        self.port = config.sip.port or free_port(config.sip.listen)
        self.kamailio: KamailioSupervisor | None = None
        self.pair = Pair(config, self.store, self.mode, self.trunk)  # [ha]: shared address, mode, trunks
        self._runner: web.AppRunner | None = None
        # The same API over HTTPS on the LAN for vendors, with bearer tokens ([api]).
        self.tokens = TokenStore(self.store)
        self.network = NetworkApi(config, self.tokens)
        # The directory mirror: staleness only matters while the cloud answers (NORMAL).
        self.mirror = MirrorService(
            self.store,
            build_source(config),
            config.mirror,
            config.cloud.realm,
            cloud_reachable=lambda: self.mode.mode is Mode.NORMAL,
            on_removed=self._drop_bindings,
        )
        self.mirror.on_health.add(self._on_mirror_event)
        # LEDs, button and bypass relay: only when [hardware] enabled (a dev machine has no GPIO).
        self.hw: HardwareController | None = None
        self.heartbeat = Heartbeat(SystemdNotifier(), self._health)
        # Call records: captured always, delivered only while the cloud is reachable (NORMAL).
        host = SystemHost()
        clocks: list[ClockSource] = [SystemNtpClock(host)]
        if self.trunk is not None:
            clocks.append(self.trunk.clock)  # the mobile network's time while NTP is gone with the WAN
        self.cdr = CdrService(
            self.store,
            config.cdr,
            deliver_now=lambda: self.mode.mode is Mode.NORMAL,
            host=host,
            sources=clocks,
            trunk_extension=config.trunk.extension,  # calls from it come in from the trunk
            emergency=config.trunk.emergency_list,  # the dial plan's and Kamailio's list
            # A pair: a call may end through the other box (after a failover); its end or start comes by DMQ.
            pair=pair_calls(config.run_dir / "kamailio-rpc.sock") if config.ha.enabled else None,
        )
        # `lifeline drill`: forced SURVIVAL, checks and a test call, back to automatic, a report.
        self.drill = DrillService(self)
        # The status page on the network API's site (/ui/): admin password login, live figures, the actions.
        self.status_page = StatusPage(
            status=self.status,
            set_override=self.mode.set_override,
            drill=self.drill,
            mirror=self.mirror,
            store=self.store,
            limiter=self.network.limiter,
            health=self.health.status,
            idle_s=config.api.session_idle_s,
        )

    async def status(self, phones: bool = True) -> dict[str, Any]:
        """Everything `lifeline status` shows (/metrics leaves out the list of phones: counts suffice)."""
        # Kamailio's answers asked together, each within STATUS_WAIT_S: a hung Kamailio costs a status one
        # wait (it then shows neither), not each RPC's timeout in turn, past the CLI's own limit.
        registrations, edge = await asyncio.gather(
            self.phones.registrations(with_list=phones),
            self.kamailio.edge_within(STATUS_WAIT_S) if self.kamailio else asyncio.sleep(0),
        )
        # The store's three answers in one trip to a worker thread: each trip costs the loop a wake-up.
        alerts, extensions, events = await asyncio.to_thread(self._stored_status)
        return {
            "version": __version__,
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.started, 1),
            "mode": self.mode.status().as_dict(),
            "ha": self.pair.status(),
            "sip": {
                "listen": self.config.sip.listen,
                "port": self.port,
                "transports": list(self.config.sip.transports),
                "tls_port": self.kamailio.tls.port if self.kamailio and self.kamailio.tls else None,
                "cloud": self.config.cloud.sbc,
                "cloud_port": self.kamailio.cloud_port if self.kamailio else None,
                "realm": self.config.cloud.realm,
                "kamailio": self.kamailio.status() if self.kamailio else None,
                "edge": edge,
            },
            "registrations": registrations,
            "hardware": self.hw.status() if self.hw is not None else None,
            "health": self.health.status(),
            "alerts": alerts,
            "extensions": extensions,
            "mirror": await self.mirror.status(),
            "cdr": await self.cdr.status(),
            "trunk": await self.trunk.status() if self.trunk is not None else None,
            "drill": self.drill.summary(),
            "paths": {
                "config": str(self.config_path) if self.config_path else None,
                "database": str(self.config.db_path),
                "run_dir": str(self.config.run_dir),
                "api_socket": str(self.config.api_socket),
            },
            "api": self.network.status(),
            "events": events,
        }

    def _stored_status(self) -> tuple[dict[str, Any], int, list[dict[str, Any]]]:
        """The alerts' state, the number of extensions and the last ten events (worker thread)."""
        return self.alerts.status(), self.store.count_extensions(), self.store.recent_events(10)

    async def _on_mode(self, old: Mode, new: Mode, reason: str) -> None:
        if self.kamailio is not None and old.serves_locally != new.serves_locally:
            await self.kamailio.apply_mode(new.serves_locally)
        # NORMAL ⇄ SUSPECT is routine jitter; administrators hear about what changes service.
        if {old, new} != {Mode.NORMAL, Mode.SUSPECT}:
            summary = f"Lifeline {old.value} → {new.value}: {reason}"
            data = {"old": old.value, "new": new.value, "reason": reason, "summary": summary}
            await self.alerts.raise_alert(Alert.new("mode.changed", {**data, "health": self.health.status()}))

    async def _cdr_on_mode(self, old: Mode, new: Mode, reason: str) -> None:
        # Back to NORMAL after an outage: hand the cloud the records of what we carried, now.
        if new is Mode.NORMAL:
            self.cdr.kick()

    async def _drop_bindings(self, numbers: list[str]) -> None:
        # A deleted extension must stop receiving calls now, not when its binding expires.
        if self.kamailio is None:
            return
        for number in numbers:
            await self.kamailio.drop_bindings(number)

    async def _on_trunk_limit(self, event: dict[str, Any]) -> None:
        # Toll fraud shows as calls refused by a limit: administrators hear of it (webhook, and SMS if configured).
        summary = f"Lifeline {limit_event_message(event)}"
        await self.alerts.raise_alert(Alert.new("trunk.limit", {**event, "summary": summary}))

    async def _on_emergency(self, event: dict[str, Any]) -> None:
        # Someone dialled an emergency number (the agent reports it as the dial goes out): the front
        # desk by SIP MESSAGE and ring first, then administrators by SMS and the webhook (urgent alerts).
        caller = await asyncio.to_thread(lookup_caller, self.store, str(event.get("extension") or ""))
        when = self.cdr.clock.from_wall(float(event["at"])).ts  # the network's time when NTP is gone
        notice = build_notice(event, caller, when)
        if (self.config.emergency.notify or self.config.emergency.ring) and self.trunk is not None:
            notice.data["notified"] = await notify_extensions(self.trunk, self.config.emergency, notice)
        await self.alerts.raise_alert(Alert.new("emergency.call", notice.data))
        await asyncio.to_thread(self.store.add_event, "emergency", notice.summary, notice.data)

    async def _on_fallback(self, timers: FallbackTimers) -> None:
        # The cloud's round trip moved (or a probe went unanswered): Kamailio waits that much less or more.
        if self.kamailio is not None:
            await self.kamailio.set_cloud_timers(timers.wait_ms, timers.t1_ms)

    async def _on_sbcs(self, up: list[bool]) -> None:
        # Which cloud SBCs answer the probes: Kamailio's dispatcher relays to the first of them.
        if self.kamailio is not None:
            await self.kamailio.set_sbc_states(up)

    async def _on_ban(self, ban: dict[str, Any]) -> None:
        # Kamailio banned an address for failed logins: the status page's events say so.
        until = time.strftime("%H:%M:%S", time.localtime(ban["until"]))
        message = f"SIP: {ban['address']} banned after repeated failed logins, until {until} (ban {ban['bans']} today)"
        await asyncio.to_thread(self.store.add_event, "sip", message, ban)

    async def _on_sms(self, message: dict[str, Any]) -> None:
        # An SMS to the trunk's SIM: administrators see it through the alert channels (webhook).
        summary = f"SMS to the trunk from {message.get('sender') or 'unknown'}: {message.get('text', '')}"
        await self.alerts.raise_alert(Alert.new("sms.received", {**message, "summary": summary}))

    async def _on_mirror_event(self, event: str, data: dict[str, Any]) -> None:
        summary = f"Lifeline directory mirror {event.removeprefix('mirror_')}: {data}"
        await self.alerts.raise_alert(Alert.new(event.replace("_", "."), {**data, "summary": summary}))

    def _health(self) -> Health:
        """The heartbeat's verdict: is the SIP data plane up, and what is wrong."""
        faults = set(power_faults()) | storage_faults(self.config.data_dir)
        if self.health.where() == "lan":
            faults.add(FaultClass.NETWORK)  # the LAN probe fails: no link or no gateway, so nothing else can work
        running = self.kamailio is not None and self.kamailio.state is KamailioState.RUNNING
        if not running:
            faults.add(FaultClass.SIP)
        # The trunk agent's last report: the trunk LED, and whether it holds the analog line.
        trunk = self.trunk.view() if self.trunk is not None else None
        if trunk is not None and not trunk.usable:
            faults.add(FaultClass.TRUNK)
        owns_analog = trunk is not None and trunk.kind == "analog" and trunk.usable
        return Health(healthy=running, faults=frozenset(faults), trunk=trunk, owns_analog_trunk=owns_analog)

    async def _on_cloud_list(self, config: Config, first: str | None, standby: tuple[str, ...]) -> None:
        # cloud.sbc's SRV answer changed: the probes and Kamailio move to the new list, as if the file said it.
        self.config = config
        self.health.set_sbcs(config, self.cloud.current.source, (first, *standby))
        if self.kamailio is not None:
            await self.kamailio.replace_cloud(config, first, standby)

    async def start(self) -> None:
        """Start Kamailio and the API."""
        # An SRV name becomes its list of SBCs (each name's address the last good one while DNS is down).
        self.config, cloud_ip, standby_ips = await self.cloud.resolve()
        self.health.set_sbcs(self.config, self.cloud.current.source, (cloud_ip, *standby_ips))
        # The caller key is new on every start: Kamailio and the trunk agent get it, nobody else.
        pair_key = self.config.ha.key_file if self.config.ha.enabled else None
        keys = await asyncio.to_thread(edge_keys, self.config.data_dir, pair_key)
        tls: TlsInputs | None = None
        # Where the network API listens: Lifeline's own certificate names that address too when it is made.
        api_address = await asyncio.to_thread(self.network.resolve)
        if "tls" in self.config.sip.transports:
            # The operator's certificate, or Lifeline's own, made on the first start.
            files = await asyncio.to_thread(tls_files, self.config, (api_address,) if api_address else ())
            port = self.config.sip.tls_port or free_port(self.config.sip.listen)
            tls = TlsInputs(port, files, self.config.run_dir / "kamailio-tls.cfg")
        self.kamailio = KamailioSupervisor(
            self.config,
            port=self.port,
            cloud_port=await cloud_port(self.store, self.config, self.port) if cloud_ip is not None else 0,
            standby_ips=standby_ips,
            cloud_host_ip=cloud_ip,
            survival=lambda: self.mode.mode.serves_locally,
            keys=keys,
            tls=tls,
        )
        self.kamailio.on_ban.add(self._on_ban)
        self.health.on_fallback.add(self._on_fallback)
        self.health.on_sbcs.add(self._on_sbcs)
        self.mode.on_change.add(self._on_mode)
        self.mode.on_change.add(self._cdr_on_mode)
        # Kamailio reads the CDR settings from the store when it starts.
        await asyncio.to_thread(self.cdr.prepare)
        await self.kamailio.start()
        await self.pair.start(self.kamailio.pair_table())  # after Kamailio: keepalived's check asks it first
        if self.trunk is not None:
            self.trunk.on_sms.add(self._on_sms)
            self.trunk.on_limit.add(self._on_trunk_limit)
            self.trunk.on_emergency.add(self._on_emergency)
            await self.trunk.start(self.port, keys.caller)
        await self.alerts.start()
        await self.health.start()
        self.cloud.start(self._on_cloud_list)
        api = build_api(self.status, self.mode.set_override)
        add_mirror_routes(api, self.mirror)
        if self.trunk is not None:
            add_trunk_routes(api, self.trunk)
        add_drill_routes(api, self.drill)
        await self.drill.start()  # a drill a restart cut short gives the override back
        add_token_routes(api, self.tokens)
        add_openapi_route(api)
        self.network.install(api)  # bearer tokens and scopes for what comes over TCP; the socket stays trusted
        from gateway.web.metrics import add_metrics_routes

        add_metrics_routes(api, functools.partial(self.status, phones=False))
        self.status_page.install(api)
        await self.status_page.start()
        runner = web.AppRunner(api, access_log=None)
        await runner.setup()
        self._runner = runner
        # The network API first: once the socket answers, the status says whether it serves or why not.
        await self.network.start(runner)
        sock = self.config.api_socket
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
        await web.UnixSite(runner, str(sock)).start()
        sock.chmod(0o660)
        if self.config.hardware.enabled:
            from gateway.hw.build import build_hardware

            self.hw = build_hardware(self.config, self.mode, self.store)
            await self.hw.start()
            self.mode.on_change.add(self.hw.on_mode)
        await self.heartbeat.start(self.hw)
        await self.mirror.start()
        await self.cdr.start()
        status = self.mode.status()
        log.info(
            "lifeline running",
            sip=f"{self.config.sip.listen}:{self.port} ({'+'.join(self.config.sip.transports)})",
            cloud=self.config.cloud.sbc or "none configured: serving all phones locally",
            mode=status.mode.value,
            override=status.override.value,
            database=str(self.config.db_path),
            api_socket=str(sock),
            api=self.network.url or self.network.error or "off",
            kamailio_config=str(self.kamailio.cfg_path),
            config=str(self.config_path) if self.config_path else "embedded defaults",
        )

    async def stop(self) -> None:
        """Stop the API, then Kamailio, then close the store."""
        # First the heartbeat (STOPPING=1) and the relay: the analog line goes back to the PSTN at once.
        await self.heartbeat.stop()
        await self.drill.stop()  # a running drill puts the mode back while Kamailio is still there
        await self.mirror.stop()
        await self.cdr.stop()
        if self.hw is not None:
            await self.hw.stop()
        await self.cloud.stop()
        await self.health.stop()
        await self.alerts.stop()
        await self.status_page.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        if self.trunk is not None:
            await self.trunk.stop()
        await self.pair.stop()  # the peer takes the address before Kamailio goes
        if self.kamailio is not None:
            await self.kamailio.stop()
        self.store.close()
        log.info("lifeline stopped")

    async def run_forever(self) -> None:
        """Run until SIGTERM or SIGINT."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await self.start()
            await stop.wait()
            log.info("stopping", reason="signal")
        finally:
            await self.stop()


def _alert_channels(config: Config) -> list[AlertChannel]:
    channels: list[AlertChannel] = []
    alerts = config.alerts
    if alerts.webhook_url and alerts.webhook_secret_file:
        try:
            secret = alerts.webhook_secret_file.read_text().strip()
        except OSError as err:
            raise ConfigError(f"alerts.webhook_secret_file = {str(alerts.webhook_secret_file)!r}: {err}") from err
        channels.append(WebhookChannel(alerts.webhook_url, secret, alerts.webhook_timeout_s, alerts.webhook_ca_file))
    return channels
