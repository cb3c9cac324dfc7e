"""A faithful simulator of USB voice modems on pty pairs, for tests, the bench and `lifeline lab`."""

from __future__ import annotations

from gateway.trunk.sim.modem import FarEnd, Network, Outcome, SimConfig, SimModem
from gateway.trunk.sim.usb import SimUsbReset

__all__ = ["FarEnd", "Network", "Outcome", "SimConfig", "SimModem", "SimUsbReset"]
