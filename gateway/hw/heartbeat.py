"""The daemon's liveness loop: feeds systemd's watchdog and hands each health verdict to the hardware."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import structlog

from gateway.hw.controller import HardwareController, Health
from gateway.hw.patterns import FaultClass
from gateway.hw.watchdog import Notifier, watchdog_interval

log = structlog.get_logger("heartbeat")

# The heartbeat LED blinks at this period or faster, whatever WatchdogSec is.
MAX_TICK_S = 1.0
# Raspberry Pi firmware's throttling flags; bit 0 = under-voltage right now.
THROTTLED_PATH = Path("/sys/devices/platform/soc/soc:firmware/get_throttled")
# Below this the SQLite WAL and the call records have no room to grow: say so before writes fail.
MIN_FREE_BYTES = 64 * 1024 * 1024


def power_faults(path: Path = THROTTLED_PATH) -> frozenset[FaultClass]:
    """POWER when the Pi reports under-voltage now; nothing when the file is absent (not a Pi)."""
    try:
        value = int(path.read_text().strip(), 16)
    except (OSError, ValueError):
        return frozenset()
    return frozenset({FaultClass.POWER}) if value & 0x1 else frozenset()


def storage_faults(data_dir: Path, min_free_bytes: int = MIN_FREE_BYTES) -> frozenset[FaultClass]:
    """STORAGE when the data directory is missing, not writable, or nearly full (call records stop there)."""
    try:
        free = shutil.disk_usage(data_dir).free
    except OSError:
        return frozenset({FaultClass.STORAGE})
    if free < min_free_bytes or not os.access(data_dir, os.W_OK):
        return frozenset({FaultClass.STORAGE})
    return frozenset()


class Heartbeat:
    """Every tick: assess health, send WATCHDOG=1, update the LEDs and relay. A hung loop stops all three."""

    def __init__(self, notifier: Notifier, assess: Callable[[], Health], tick_s: float | None = None) -> None:
        self._notifier = notifier
        self._assess = assess
        watchdog = watchdog_interval()
        self.watchdog_armed = watchdog is not None
        self.tick_s = tick_s if tick_s is not None else min(MAX_TICK_S, watchdog or MAX_TICK_S)
        self._hw: HardwareController | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, hw: HardwareController | None) -> None:
        """Tell systemd the daemon is ready and start ticking."""
        self._hw = hw
        self._tick()
        self._notifier.notify("READY=1\nSTATUS=running")
        self._task = asyncio.create_task(self._run(), name="heartbeat")
        log.info("heartbeat started", tick_s=self.tick_s, systemd_watchdog=self.watchdog_armed)

    async def stop(self) -> None:
        """Tell systemd the daemon is stopping (so the watchdog does not fire meanwhile) and stop ticking."""
        self._notifier.notify("STOPPING=1")
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _tick(self) -> None:
        health = self._assess()
        self._notifier.notify("WATCHDOG=1")
        if self._hw is not None:
            self._hw.update(health)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                self._tick()
            except Exception:
                # A broken assessment must not stop the watchdog pings forever silently: log it and
                # skip the ping, so systemd restarts a daemon that keeps failing here.
                log.exception("health assessment failed")
