"""Builds the hardware controller from the [hardware] config (the daemon calls this only when enabled)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.config import Config
from gateway.core.mode import ModeController
from gateway.hw import pinmap as pinmap_mod
from gateway.hw.admin import TtyConsole, reset_admin_password
from gateway.hw.controller import HardwareController, HardwareTimings
from gateway.hw.factory import make_pin_factory
from gateway.store import Store

INSTALLED_PINMAP = Path("/etc/lifeline/pinmap.toml")


def pinmap_path(config: Config) -> Path:
    """The pin map the config names, else the installed one, else the repository's."""
    if config.hardware.pinmap is not None:
        return config.hardware.pinmap
    return INSTALLED_PINMAP if INSTALLED_PINMAP.exists() else pinmap_mod.DEFAULT_PINMAP


def build_hardware(config: Config, mode: ModeController, store: Store) -> HardwareController:
    """Load the pin map, open the pin factory and wire the button's admin-password reset."""
    hw = config.hardware
    pins = pinmap_mod.load(pinmap_path(config))
    console = TtyConsole(hw.console)

    async def reset() -> None:
        await asyncio.to_thread(reset_admin_password, store, console, "front-panel button held")

    timings = HardwareTimings(
        drill_hold_s=hw.drill_hold_s,
        reset_hold_s=hw.reset_hold_s,
        drill_duration_s=hw.drill_minutes * 60,
    )
    return HardwareController(pins, make_pin_factory(hw.pin_factory), mode, reset, timings)
