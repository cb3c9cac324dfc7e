"""Builds the gpiozero pin factory the config names; nothing sets gpiozero's global default."""

from __future__ import annotations

from typing import Any, Literal

from gateway.errors import HardwareError

PinFactoryName = Literal["lgpio", "rpigpio", "native", "mock"]


def make_pin_factory(name: PinFactoryName) -> Any:
    """A new pin factory: lgpio on a Pi (4 and 5), mock for a demo without GPIO."""
    try:
        if name == "mock":
            from gpiozero.pins.mock import MockFactory

            return MockFactory()
        if name == "lgpio":
            from gpiozero.pins.lgpio import LGPIOFactory

            return LGPIOFactory()
        if name == "rpigpio":
            from gpiozero.pins.rpigpio import RPiGPIOFactory

            return RPiGPIOFactory()
        from gpiozero.pins.native import NativeFactory

        return NativeFactory()
    except Exception as err:  # ImportError, or the library failing to open /dev/gpiochip*
        raise HardwareError(f"hardware.pin_factory = {name!r}: cannot open the GPIO: {err}") from err
