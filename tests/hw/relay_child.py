"""A daemon stand-in for test_relay_crash: the real heartbeat and hardware controller on mock pins.

Every pin change is written to the file descriptor in $PIN_EVENTS_FD as "<pin> <0|1> <monotonic>",
so the parent, playing the HAT's relay stage, sees the pins after this process is gone.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from gpiozero.pins.mock import MockFactory, MockPin  # noqa: E402

from gateway.core.mode import ModeController  # noqa: E402
from gateway.hw.controller import HardwareController, HardwareTimings, Health  # noqa: E402
from gateway.hw.heartbeat import Heartbeat  # noqa: E402
from gateway.hw.pinmap import DEFAULT_PINMAP, load  # noqa: E402
from gateway.hw.watchdog import SystemdNotifier  # noqa: E402
from gateway.store import Store  # noqa: E402

EVENTS_FD = int(os.environ["PIN_EVENTS_FD"])


class ReportingPin(MockPin):  # type: ignore[misc]
    """A mock pin that also tells the parent about every change."""

    def _change_state(self, value: bool) -> Any:
        changed = super()._change_state(value)
        if changed:
            os.write(EVENTS_FD, f"{self.info.name} {int(value)} {time.monotonic()}\n".encode())
        return changed


async def main() -> None:
    store = Store(Path(sys.argv[1]))
    mode = ModeController(store)

    async def no_reset() -> None:
        return None

    hw = HardwareController(
        load(DEFAULT_PINMAP), MockFactory(pin_class=ReportingPin), mode, no_reset, HardwareTimings()
    )
    heartbeat = Heartbeat(SystemdNotifier(), lambda: Health(healthy=True, owns_analog_trunk=True), tick_s=0.2)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await hw.start()
    await heartbeat.start(hw)
    await stop.wait()
    await heartbeat.stop()
    await hw.stop()
    store.close()


if __name__ == "__main__":
    asyncio.run(main())
