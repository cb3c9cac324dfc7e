"""The GPIO pin map (hardware/pinmap.toml): loaded, validated against the boards it names."""

from __future__ import annotations

import enum
import tomllib
from pathlib import Path
from typing import Any

from gpiozero.pins.pi import pi_info
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gateway.errors import ConfigError

# The repository's own map: the default when the config names none.
DEFAULT_PINMAP = Path(__file__).resolve().parents[2] / "hardware" / "pinmap.toml"


class LedRole(enum.StrEnum):
    """The five status LEDs on the front panel."""

    POWER = "power"
    NORMAL = "normal"
    SURVIVAL = "survival"
    FAULT = "fault"
    TRUNK = "trunk"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PinRef(_Model):
    """One GPIO line: its BCM name and its position on the 40-pin header."""

    pin: str = Field(pattern=r"^GPIO([0-9]|[1-9][0-9])$")
    physical: int = Field(ge=1, le=40)


class LedPin(PinRef):
    """A status LED (active high: the pin sources the LED current through a resistor)."""

    colour: str


class ButtonPin(PinRef):
    """The front-panel button."""

    pull_up: bool = True
    bounce_ms: int = Field(30, ge=0, le=500)


class RelayPins(_Model):
    """The bypass relay's two control lines and the HAT's hold time."""

    hold_ms: int = Field(ge=100, le=10000)
    kick_interval_ms: int = Field(ge=20, le=5000)
    enable: PinRef
    kick: PinRef

    @model_validator(mode="after")
    def _kick_faster_than_hold(self) -> RelayPins:
        if self.kick_interval_ms * 2 > self.hold_ms:
            raise ValueError(
                f"kick_interval_ms ({self.kick_interval_ms}) must be at most half of hold_ms ({self.hold_ms})"
            )
        return self


class Board(_Model):
    """The boards (gpiozero revision codes) and header this map was drawn for."""

    header: str = "J8"
    revisions: tuple[str, ...] = Field(min_length=1)
    reserved: frozenset[str] = Field(description="pins no function may use (the HAT ID EEPROM's)")


class PinMap(_Model):
    """The whole map."""

    board: Board
    leds: dict[LedRole, LedPin]
    button: ButtonPin
    relay: RelayPins

    @model_validator(mode="after")
    def _complete(self) -> PinMap:
        missing = [role.value for role in LedRole if role not in self.leds]
        if missing:
            raise ValueError(f"leds: missing {', '.join(missing)}")
        return self

    def assignments(self) -> dict[str, PinRef]:
        """Every pin in use, by the key that names it in the file."""
        pins: dict[str, PinRef] = {f"leds.{role.value}": led for role, led in self.leds.items()}
        pins["button"] = self.button
        pins["relay.enable"] = self.relay.enable
        pins["relay.kick"] = self.relay.kick
        return pins


def check(pinmap: PinMap) -> list[str]:
    """Everything wrong with the map: pins used twice, reserved, or not where it says on a board."""
    problems: list[str] = []
    seen: dict[str, str] = {}
    positions: dict[int, str] = {}
    for key, ref in pinmap.assignments().items():
        if ref.pin in pinmap.board.reserved:
            problems.append(f"{key}: {ref.pin} is reserved (board.reserved)")
        if ref.pin in seen:
            problems.append(f"{key}: {ref.pin} is already used by {seen[ref.pin]}")
        seen.setdefault(ref.pin, key)
        if ref.physical in positions:
            problems.append(f"{key}: header pin {ref.physical} is already used by {positions[ref.physical]}")
        positions.setdefault(ref.physical, key)
    for revision in pinmap.board.revisions:
        try:
            info = pi_info(revision)
        except Exception as err:  # gpiozero raises its own PinUnknownPi, or ValueError for non-hex
            problems.append(f"board.revisions: {revision!r} is not a board gpiozero knows ({err})")
            continue
        if "?" in info.model:  # a well-formed code for a board gpiozero has no data on
            problems.append(f"board.revisions: {revision!r} is not a board gpiozero knows")
            continue
        header = info.headers.get(pinmap.board.header)
        if header is None:
            problems.append(f"board.header: {info.model} ({revision}) has no header {pinmap.board.header}")
            continue
        for key, ref in pinmap.assignments().items():
            actual = header.pins.get(ref.physical)
            if actual is None or ref.pin not in actual.names:
                found = actual.name if actual is not None else "nothing"
                problems.append(
                    f"{key}: {ref.pin} is not at {pinmap.board.header} pin {ref.physical} "
                    f"on a Pi {info.model} ({revision}); that pin is {found}"
                )
    return problems


def parse(data: dict[str, Any], source: str) -> PinMap:
    """Validate a parsed pin map; ConfigError names every problem."""
    try:
        pinmap = PinMap.model_validate(data)
    except ValidationError as err:
        lines = [f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in err.errors()]
        raise ConfigError(f"{source}: invalid pin map:\n  " + "\n  ".join(lines)) from err
    problems = check(pinmap)
    if problems:
        raise ConfigError(f"{source}: invalid pin map:\n  " + "\n  ".join(problems))
    return pinmap


def load(path: Path) -> PinMap:
    """Read and validate the pin map file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ConfigError(f"{path}: no such pin map") from err
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read the pin map: {err}") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: pin map is not valid TOML: {err}") from err
    return parse(data, str(path))
