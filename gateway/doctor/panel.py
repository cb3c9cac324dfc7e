"""The front panel and the bypass relay: only a person can see them, so the doctor says what they should show."""

from __future__ import annotations

from typing import Any

from gateway.config import Config
from gateway.core.mode import Mode
from gateway.doctor.model import Check, Facts, Verdict
from gateway.hw.patterns import FAST_BLINK, SLOW_BLINK, FaultClass, PanelState, Pattern, TrunkView, display
from gateway.hw.pinmap import LedRole

LABELS = {
    LedRole.NORMAL: "normal (green)",
    LedRole.SURVIVAL: "survival (amber)",
    LedRole.FAULT: "fault (red)",
    LedRole.TRUNK: "trunk (blue)",
}
POWER = "power (white) blinks once a second"
LED_FIX = "check the HAT's connector and [hardware] pinmap; `lifeline status --json` shows the faults"
RELAY_FIX = "check the relay stage and its wiring (hardware/hat.md)"


def describe(pattern: Pattern) -> str:
    """A blink pattern in the README's words."""
    if pattern.count == 0:
        return "on" if pattern.steady else "off"
    if pattern == SLOW_BLINK:
        return "slow blink"
    if pattern == FAST_BLINK:
        return "flickers"
    return f"{pattern.count} short blink(s), then a pause"


def trunk_view(trunk: dict[str, Any] | None) -> TrunkView | None:
    """The trunk LED's input from the daemon's trunk status (as TrunkSupervisor.view() makes it)."""
    if trunk is None:
        return None
    modems = (trunk.get("modems") or []) if trunk.get("state") == "running" else []
    ready = [m for m in modems if m.get("state") == "ready"]
    analog = bool(modems) and all(m.get("family") == "v253" for m in modems)
    bars = max(((m.get("signal") or {}).get("bars") or 0 for m in ready), default=0)
    return TrunkView(kind="analog" if analog else "gsm", usable=bool(ready), bars=int(bars))


def expected_leds(status: dict[str, Any]) -> str:
    """What each LED should show for this status, through the same function that drives them."""
    hardware = status.get("hardware") or {}
    faults = frozenset(
        FaultClass[name.upper()] for name in hardware.get("faults") or [] if name.upper() in FaultClass.__members__
    )
    state = PanelState(
        mode=Mode(status.get("mode", {}).get("mode", "normal")),
        drill=bool(hardware.get("drill")),
        faults=faults,
        trunk=trunk_view(status.get("trunk")),
    )
    shown = display(state)
    return "; ".join([POWER, *(f"{LABELS[role]} {describe(shown[role])}" for role in LABELS)])


def panel_checks(facts: Facts, config: Config) -> list[Check]:
    """LOOK items for the LEDs and the relay (SKIP without [hardware])."""
    if not config.hardware.enabled:
        off = "[hardware] is off: no LEDs, button or relay are driven"
        return [Check("leds", Verdict.SKIP, off), Check("relay", Verdict.SKIP, off)]
    if facts.status is None:
        start = "`systemctl start lifeline`: then the power LED blinks once a second"
        relay = "released: the analog phone is straight on the PSTN line (it drops within a second of a stop)"
        return [
            Check(
                "leds", Verdict.LOOK, "the daemon is down: the power LED (white) stays on or off, no blinking", start
            ),
            Check("relay", Verdict.LOOK, relay, RELAY_FIX),
        ]
    hardware = facts.status.get("hardware")
    if hardware is None:
        detail = "the running daemon drives no hardware: it started before [hardware] was enabled"
        restart = "`systemctl restart lifeline`"
        return [Check("leds", Verdict.WARN, detail, restart), Check("relay", Verdict.WARN, detail, restart)]
    if hardware.get("relay") == "held":
        relay = "energised: the analog line goes to Lifeline's analog modem"
    else:
        relay = "released: the analog phone is straight on the PSTN line (held only while Lifeline owns that line)"
    return [
        Check("leds", Verdict.LOOK, expected_leds(facts.status), LED_FIX),
        Check("relay", Verdict.LOOK, relay, RELAY_FIX),
    ]
