"""The front panel and the relay through gpiozero's MockFactory: what a person at the box would see."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from gateway.core.mode import Mode, ModeController, Override
from gateway.hw.admin import STATE_KEY, TtyConsole, reset_admin_password, verify_password
from gateway.hw.controller import HardwareController, HardwareTimings, Health
from gateway.hw.patterns import FaultClass, TrunkView
from gateway.hw.pinmap import DEFAULT_PINMAP, LedRole, PinMap, load
from gateway.hw.relay import RelayState
from gateway.store import Store
from tests.hw.helpers import pulse_groups, wait_for

PINMAP = load(DEFAULT_PINMAP)
HEALTHY = Health(healthy=True, owns_analog_trunk=True)


@dataclass
class Rig:
    hw: HardwareController
    mode: ModeController
    store: Store
    factory: Any
    console: Path

    def pin(self, name: str) -> Any:
        return self.factory.pin(name)

    def led(self, role: LedRole) -> Any:
        return self.pin(PINMAP.leds[role].pin)

    @property
    def button(self) -> Any:
        return self.pin(PINMAP.button.pin)

    @property
    def enable(self) -> Any:
        return self.pin(PINMAP.relay.enable.pin)

    @property
    def kick(self) -> Any:
        return self.pin(PINMAP.relay.kick.pin)


def make_rig(tmp_path: Path, pinmap: PinMap = PINMAP, **timings: float) -> Rig:
    store = Store(tmp_path / "lifeline.db")
    mode = ModeController(store)
    console = tmp_path / "console"
    console.touch()

    async def reset() -> None:
        await asyncio.to_thread(reset_admin_password, store, TtyConsole(console), "front-panel button held")

    defaults = {"drill_hold_s": 0.4, "reset_hold_s": 1.2, "drill_duration_s": 60.0, "health_stale_s": 0.6}
    hw = HardwareController(pinmap, MockFactory(), mode, reset, HardwareTimings(**{**defaults, **timings}))
    return Rig(hw, mode, store, hw._factory, console)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    rig = make_rig(tmp_path)
    rig.mode.on_change.add(rig.hw.on_mode)
    await rig.hw.start()
    yield rig
    await rig.hw.stop()
    rig.store.close()


async def test_mode_leds_follow_the_mode_controller(rig: Rig) -> None:
    normal, survival = rig.led(LedRole.NORMAL), rig.led(LedRole.SURVIVAL)
    assert (normal.state, survival.state) == (True, False)
    await rig.mode.set_override(Override.SURVIVAL, "test")
    assert (normal.state, survival.state) == (False, True)
    await rig.mode.set_override(Override.AUTO, "test")
    assert (normal.state, survival.state) == (True, False)
    normal.clear_states()
    await rig.mode.observe(Mode.SUSPECT, "probes missed")
    # SUSPECT: green blinks 0.5 s on / 0.5 s off, amber stays dark.
    await wait_for(lambda: len(normal.states) >= 8, 8, "green to blink")
    assert survival.state is False
    # The median of six: gpiozero's blink thread may be woken late once on a busy box.
    periods = sorted(s.timestamp for s in normal.states[2:8])
    assert 0.35 < statistics.median(periods) < 0.8, periods


async def test_fault_led_blinks_the_fault_class_and_trunk_led_the_signal_bars(rig: Rig) -> None:
    fault, trunk = rig.led(LedRole.FAULT), rig.led(LedRole.TRUNK)
    assert fault.state is False and trunk.state is False
    faults = frozenset({FaultClass.STORAGE, FaultClass.TRUNK})
    rig.hw.update(Health(healthy=True, faults=faults, trunk=TrunkView("gsm", usable=True, bars=3)))
    # Both play at once; a person counts the blinks between the pauses.
    await wait_for(lambda: len(pulse_groups(fault)) >= 2 and len(pulse_groups(trunk)) >= 2, 12, "two full cycles")
    assert set(pulse_groups(fault)) == {2}, pulse_groups(fault)  # TRUNK (2) is more urgent than STORAGE (3)
    assert set(pulse_groups(trunk)) == {3}, pulse_groups(trunk)
    rig.hw.update(Health(healthy=True))
    assert fault.state is False and trunk.state is False


async def test_power_led_beats_once_per_health_verdict(rig: Rig) -> None:
    power = rig.led(LedRole.POWER)
    before = len(power.states)
    for _ in range(4):
        rig.hw.update(HEALTHY)
    assert len(power.states) - before == 4


async def test_relay_is_bypass_until_healthy_and_owning_the_trunk(rig: Rig) -> None:
    assert rig.enable.state is False and rig.hw.relay_state is RelayState.BYPASS
    rig.hw.update(Health(healthy=True, owns_analog_trunk=False))
    await asyncio.sleep(0.5)  # several kick intervals pass: nothing may happen
    assert rig.enable.state is False and len(rig.kick.states) == 1
    rig.hw.update(HEALTHY)
    await wait_for(lambda: rig.enable.state is True, 2, "relay enable")
    await wait_for(lambda: len(rig.kick.states) >= 4, 2, "the kick pin toggling")
    rig.hw.update(Health(healthy=False, faults=frozenset({FaultClass.SIP})))
    await wait_for(lambda: rig.enable.state is False, 2, "relay released when unhealthy")
    assert rig.hw.relay_state is RelayState.BYPASS


async def test_relay_drops_when_the_health_loop_stops_reporting(rig: Rig) -> None:
    rig.hw.update(HEALTHY)
    await wait_for(lambda: rig.enable.state is True, 2, "relay enable")
    # No further verdicts: after health_stale_s (0.6 s) the relay must let go by itself.
    await wait_for(lambda: rig.enable.state is False, 3, "relay released on a stale verdict")
    assert rig.hw.relay_state is RelayState.BYPASS


async def test_a_hung_event_loop_stops_the_kicks(rig: Rig) -> None:
    rig.hw.update(HEALTHY)
    await wait_for(lambda: len(rig.kick.states) >= 3, 2, "kicks")
    hold_s = PINMAP.relay.hold_ms / 1000
    edges = len(rig.kick.states)
    time.sleep(hold_s * 1.5)  # noqa: ASYNC251 - blocks the loop on purpose: a hung daemon
    assert len(rig.kick.states) == edges, "something kicked the relay while the event loop was hung"
    rig.hw.update(HEALTHY)
    await wait_for(lambda: len(rig.kick.states) > edges, 2, "kicks to resume with the loop")
    # The gap was longer than the HAT's hold time: the relay dropped to bypass meanwhile.
    assert rig.kick.states[edges].timestamp > hold_s


async def test_stop_drops_the_relay_and_darkens_the_panel(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    await rig.hw.start()
    rig.hw.update(HEALTHY)
    await wait_for(lambda: rig.enable.state is True, 2, "relay enable")
    enable, leds = rig.enable, [rig.led(role) for role in LedRole]
    await rig.hw.stop()
    assert enable.state is False
    assert all(led.state is False for led in leds)
    rig.store.close()


async def press(rig: Rig, hold_s: float) -> None:
    rig.button.drive_low()  # pressed: the button pulls the line to ground
    await asyncio.sleep(hold_s)  # the stimulus: a person holding the button
    rig.button.drive_high()


async def test_short_press_lights_every_led_for_a_lamp_test(rig: Rig) -> None:
    await rig.mode.set_override(Override.SURVIVAL, "test")
    others = [rig.led(r) for r in (LedRole.NORMAL, LedRole.FAULT, LedRole.TRUNK)]
    assert not any(led.state for led in others)
    await press(rig, 0.1)
    await wait_for(lambda: all(led.state for led in others), 2, "lamp test")
    await wait_for(lambda: not any(led.state for led in others), 4, "back to the live status")
    # Only a look: no drill, the override set by hand stays, no password reset.
    assert not rig.hw.drill_active and rig.mode.status().override is Override.SURVIVAL
    assert rig.console.read_text() == ""


async def test_hold_past_drill_time_starts_a_drill_that_returns_by_itself(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, drill_duration_s=1.0)
    rig.mode.on_change.add(rig.hw.on_mode)
    await rig.hw.start()
    try:
        await press(rig, 0.6)  # past drill_hold_s (0.4), short of reset_hold_s (1.2)
        await wait_for(lambda: rig.mode.mode is Mode.SURVIVAL, 2, "the drill's SURVIVAL")
        assert rig.mode.status().override is Override.SURVIVAL and rig.hw.drill_active
        assert rig.led(LedRole.NORMAL).state is False
        await wait_for(lambda: rig.mode.mode is Mode.NORMAL, 4, "the drill to end by itself")
        assert rig.mode.status().override is Override.AUTO
        assert not rig.hw.drill_active
        assert rig.led(LedRole.NORMAL).state is True
        assert rig.console.read_text() == ""  # no password reset on the way
    finally:
        await rig.hw.stop()
        rig.store.close()


async def test_a_manual_override_during_a_drill_is_not_undone(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, drill_duration_s=0.8)
    rig.mode.on_change.add(rig.hw.on_mode)
    await rig.hw.start()
    try:
        await press(rig, 0.6)
        await wait_for(lambda: rig.mode.mode is Mode.SURVIVAL, 2, "the drill's SURVIVAL")
        await rig.mode.set_override(Override.NORMAL, "installer took over")
        await asyncio.sleep(1.2)  # the drill's end passes
        assert rig.mode.status().override is Override.NORMAL
    finally:
        await rig.hw.stop()
        rig.store.close()


async def test_ten_second_hold_resets_the_admin_password_on_the_console_only(rig: Rig) -> None:
    fault = rig.led(LedRole.FAULT)
    rig.button.drive_low()
    # While still held past reset_hold_s the red LED flickers fast: "let go now to reset".
    await wait_for(lambda: len(fault.states) >= 4, 3, "reset feedback on the red LED")
    rig.button.drive_high()
    await wait_for(lambda: "New password" in rig.console.read_text(), 5, "the password on the console")
    password = rig.console.read_text().split("New password: ")[1].split()[0]
    stored = rig.store.get_state(STATE_KEY, {})
    assert verify_password(password, stored["hash"])
    assert not verify_password(password + "x", stored["hash"])
    assert password not in str(rig.store.recent_events(10))
    assert rig.mode.mode is Mode.NORMAL  # no drill either


def test_password_reset_changes_nothing_when_the_console_cannot_be_written(tmp_path: Path) -> None:
    store = Store(tmp_path / "lifeline.db")
    try:
        with pytest.raises(OSError):
            reset_admin_password(store, TtyConsole(tmp_path / "no" / "tty"), "test")
        assert store.get_state(STATE_KEY, None) is None
    finally:
        store.close()
