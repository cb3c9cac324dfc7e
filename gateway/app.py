"""Composition root: builds the parts of the daemon, starts them, and stops them in order."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from gateway import __version__
from gateway.config import Config
from gateway.core.mode import Mode, ModeController, Override
from gateway.errors import RpcError
from gateway.sip.render import free_port, resolve_cloud_host
from gateway.sip.supervisor import KamailioSupervisor
from gateway.store import Store
from gateway.web.api import build_api

log = structlog.get_logger("app")


class App:
    """The running daemon."""

    def __init__(self, config: Config, config_path: Path | None) -> None:
        self.config = config
        self.config_path = config_path
        self.started = time.time()
        for directory in (config.data_dir, config.run_dir):
            directory.mkdir(parents=True, exist_ok=True, mode=0o750)
        self.store = Store(config.db_path)
        self.mode = ModeController(self.store)
        self.port = config.sip.port or free_port(config.sip.listen)
        self.kamailio: KamailioSupervisor | None = None
        self._runner: web.AppRunner | None = None

    async def status(self) -> dict[str, Any]:
        """Everything `lifeline status` shows."""
        registrations: dict[str, Any] | None = None
        if self.kamailio is not None:
            with contextlib.suppress(RpcError):
                registrations = await self.kamailio.registrations()
        return {
            "version": __version__,
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.started, 1),
            "mode": self.mode.status().as_dict(),
            "sip": {
                "listen": self.config.sip.listen,
                "port": self.port,
                "transports": list(self.config.sip.transports),
                "cloud": self.config.cloud.sbc,
                "realm": self.config.cloud.realm,
                "kamailio": self.kamailio.status() if self.kamailio else None,
            },
            "registrations": registrations,
            "extensions": await asyncio.to_thread(self.store.count_extensions),
            "paths": {
                "config": str(self.config_path) if self.config_path else None,
                "database": str(self.config.db_path),
                "run_dir": str(self.config.run_dir),
                "api_socket": str(self.config.api_socket),
            },
            "events": await asyncio.to_thread(self.store.recent_events, 10),
        }

    async def _on_mode(self, old: Mode, new: Mode, reason: str) -> None:
        if self.kamailio is not None and old.serves_locally != new.serves_locally:
            await self.kamailio.apply_mode(new.serves_locally)

    async def start(self) -> None:
        """Start Kamailio and the API."""
        cloud_ip = await asyncio.to_thread(resolve_cloud_host, self.config.cloud.sbc)
        self.kamailio = KamailioSupervisor(
            self.config,
            port=self.port,
            cloud_host_ip=cloud_ip,
            survival=lambda: self.mode.mode.serves_locally,
        )
        self.mode.add_listener(self._on_mode)
        await self.kamailio.start()
        runner = web.AppRunner(build_api(self.status, self.mode.set_override), access_log=None)
        await runner.setup()
        sock = self.config.api_socket
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
        await web.UnixSite(runner, str(sock)).start()
        sock.chmod(0o660)
        self._runner = runner
        status = self.mode.status()
        log.info(
            "lifeline running",
            sip=f"{self.config.sip.listen}:{self.port} ({'+'.join(self.config.sip.transports)})",
            cloud=self.config.cloud.sbc or "none configured: serving all phones locally",
            mode=status.mode.value,
            override=status.override.value,
            database=str(self.config.db_path),
            api_socket=str(sock),
            kamailio_config=str(self.kamailio.cfg_path),
            config=str(self.config_path) if self.config_path else "embedded defaults",
        )

    async def stop(self) -> None:
        """Stop the API, then Kamailio, then close the store."""
        if self._runner is not None:
            await self._runner.cleanup()
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


async def set_override_offline(config: Config, override: Override, reason: str) -> dict[str, Any]:
    """Set the mode override in the store when no daemon runs; it applies at the next start."""
    store = Store(config.db_path)
    try:
        controller = ModeController(store)
        await controller.set_override(override, reason)
        return controller.status().as_dict()
    finally:
        store.close()
