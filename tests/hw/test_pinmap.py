"""The GPIO pin map: the shipped one is valid, and every kind of mistake is named."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import ConfigError
from gateway.hw.pinmap import DEFAULT_PINMAP, LedRole, check, load, parse

ROOT = Path(__file__).resolve().parents[2]


def shipped() -> dict[str, Any]:
    return tomllib.loads(DEFAULT_PINMAP.read_text())


def test_shipped_pinmap_is_valid_on_every_listed_board() -> None:
    pinmap = load(DEFAULT_PINMAP)
    assert check(pinmap) == []
    assert set(pinmap.leds) == set(LedRole)
    pins = [ref.pin for ref in pinmap.assignments().values()]
    assert len(pins) == len(set(pins)) == 8


def test_a_pin_used_twice_is_named_with_both_users() -> None:
    data = shipped()
    data["leds"]["trunk"] = {"pin": "GPIO22", "physical": 15, "colour": "blue"}
    with pytest.raises(ConfigError) as err:
        parse(data, "map.toml")
    assert "leds.trunk: GPIO22 is already used by leds.fault" in str(err.value)


def test_a_pin_that_is_not_where_the_map_says_is_caught_per_board() -> None:
    data = shipped()
    data["button"]["physical"] = 32  # GPIO12 is there
    with pytest.raises(ConfigError) as err:
        parse(data, "map.toml")
    assert "button: GPIO6 is not at J8 pin 32 on a Pi 5B (d04170); that pin is GPIO12" in str(err.value)


def test_a_gpio_the_board_does_not_have_is_caught() -> None:
    data = shipped()
    data["relay"]["kick"] = {"pin": "GPIO40", "physical": 37}
    with pytest.raises(ConfigError, match=r"relay\.kick: GPIO40 is not at J8 pin 37"):
        parse(data, "map.toml")


def test_an_unknown_board_and_a_reserved_pin_are_named() -> None:
    data = shipped()
    data["board"]["revisions"] = ["ffffff"]
    data["relay"]["enable"] = {"pin": "GPIO0", "physical": 27}
    with pytest.raises(ConfigError) as err:
        parse(data, "map.toml")
    assert "board.revisions: 'ffffff' is not a board gpiozero knows" in str(err.value)
    assert "relay.enable: GPIO0 is reserved (board.reserved)" in str(err.value)


def test_missing_led_and_bad_timing_are_named() -> None:
    data = shipped()
    del data["leds"]["fault"]
    with pytest.raises(ConfigError, match="leds: missing fault"):
        parse(data, "map.toml")
    data = shipped()
    data["relay"]["kick_interval_ms"] = 600
    with pytest.raises(ConfigError, match=r"kick_interval_ms \(600\) must be at most half of hold_ms \(1000\)"):
        parse(data, "map.toml")


def test_no_pin_number_is_written_in_the_python_code() -> None:
    literal = re.compile(r"""["']GPIO\d+["']|\bpin\s*=\s*\d+|BOARD\d+""")
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in (ROOT / "gateway").rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if literal.search(line)
    ]
    assert offenders == []


def test_wiring_diagram_is_drawn_from_the_current_pin_map() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, str(ROOT / "hardware/wiring.py"), "--check"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    svg = (ROOT / "hardware/wiring.svg").read_text()
    for ref in load(DEFAULT_PINMAP).assignments().values():
        assert f"{ref.pin} · pin {ref.physical}" in svg
