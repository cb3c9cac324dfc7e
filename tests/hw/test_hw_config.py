"""The [hardware] config section: off by default, and mistakes named by key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import config
from gateway.core.mode import ModeController
from gateway.errors import ConfigError, HardwareError
from gateway.hw.build import build_hardware
from gateway.hw.factory import make_pin_factory
from gateway.store import Store


def test_hardware_is_off_on_a_development_machine_by_default() -> None:
    hw = config.parse({}).hardware
    assert not hw.enabled
    assert (hw.drill_hold_s, hw.reset_hold_s, hw.pin_factory) == (3.0, 10.0, "lgpio")


def test_bad_hardware_values_are_named() -> None:
    with pytest.raises(ConfigError) as err:
        config.parse({"hardware": {"pin_factory": "pigpio", "drill_hold_s": 0.0}})
    message = str(err.value)
    assert "hardware.pin_factory = 'pigpio'" in message
    assert "hardware.drill_hold_s = 0.0" in message
    with pytest.raises(ConfigError, match=r"reset_hold_s \(2\.0\) must be longer than drill_hold_s \(3\.0\)"):
        config.parse({"hardware": {"reset_hold_s": 2.0}})


def test_a_missing_pin_map_stops_the_build_with_its_path(tmp_path: Path) -> None:
    cfg = config.parse({"hardware": {"enabled": True, "pin_factory": "mock", "pinmap": str(tmp_path / "nope.toml")}})
    store = Store(tmp_path / "db")
    try:
        with pytest.raises(ConfigError, match=r"nope\.toml: no such pin map"):
            build_hardware(cfg, ModeController(store), store)
    finally:
        store.close()


def test_a_pin_factory_that_cannot_open_the_gpio_is_a_hardware_error() -> None:
    # RPi.GPIO is not a dependency (lgpio is): choosing it fails with the key named, not a traceback.
    with pytest.raises(HardwareError, match=r"hardware\.pin_factory = 'rpigpio': cannot open the GPIO"):
        make_pin_factory("rpigpio")


def test_the_documented_example_config_is_valid() -> None:
    root = Path(__file__).resolve().parents[2]
    cfg, _ = config.load(root / "firmware/lifeline.toml.example")
    assert not cfg.hardware.enabled and cfg.hardware.pinmap == Path("/etc/lifeline/pinmap.toml")
