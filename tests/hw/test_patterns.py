"""What the LEDs show for each mode, fault and trunk state (pure functions)."""

from __future__ import annotations

from gateway.core.mode import Mode
from gateway.hw.patterns import OFF, ON, SLOW_BLINK, FaultClass, PanelState, TrunkView, counted, display
from gateway.hw.pinmap import LedRole


def test_each_mode_has_its_own_look() -> None:
    looks = {
        mode: (display(PanelState(mode))[LedRole.NORMAL], display(PanelState(mode))[LedRole.SURVIVAL]) for mode in Mode
    }
    assert looks[Mode.NORMAL] == (ON, OFF)
    assert looks[Mode.SUSPECT] == (SLOW_BLINK, OFF)
    assert looks[Mode.SURVIVAL] == (OFF, ON)
    assert looks[Mode.RECOVERING] == (SLOW_BLINK, ON)
    assert display(PanelState(Mode.SURVIVAL, drill=True))[LedRole.SURVIVAL] == SLOW_BLINK


def test_the_most_urgent_fault_is_blinked_as_its_number() -> None:
    state = PanelState(Mode.NORMAL, faults=frozenset({FaultClass.POWER, FaultClass.TRUNK}))
    fault = display(state)[LedRole.FAULT]
    assert fault == counted(2)
    frames = fault.frames()
    # 2 pulses of 0.2 s on / 0.3 s off, then 1.5 s dark: 2.5 s a cycle on the 100 ms grid.
    assert frames == (True, True, False, False, False) * 2 + (False,) * 15
    assert display(PanelState(Mode.NORMAL))[LedRole.FAULT] == OFF


def test_trunk_led_counts_signal_bars_and_shows_analog_steady() -> None:
    def trunk(view: TrunkView | None) -> object:
        return display(PanelState(Mode.NORMAL, trunk=view))[LedRole.TRUNK]

    assert trunk(None) == OFF
    assert trunk(TrunkView("gsm", usable=False, bars=4)) == OFF
    assert trunk(TrunkView("gsm", usable=True, bars=3)) == counted(3)
    assert trunk(TrunkView("gsm", usable=True, bars=9)) == counted(5)
    assert trunk(TrunkView("gsm", usable=True, bars=0)) == counted(1)
    assert trunk(TrunkView("analog", usable=True)) == ON


def test_lamp_test_lights_everything_but_the_heartbeat() -> None:
    shown = display(PanelState(Mode.SURVIVAL, lamp_test=True))
    assert set(shown) == set(LedRole) - {LedRole.POWER}
    assert all(p == ON for p in shown.values())
