#!/usr/bin/env python3
"""Draws hardware/wiring.svg from hardware/pinmap.toml, so the diagram cannot drift from the pin map.

python3 hardware/wiring.py          # rewrite wiring.svg
python3 hardware/wiring.py --check  # exit 1 if wiring.svg is not what the pin map draws
"""

from __future__ import annotations

import sys
import tomllib
from html import escape
from pathlib import Path

HERE = Path(__file__).resolve().parent
PINMAP = HERE / "pinmap.toml"
SVG = HERE / "wiring.svg"

# 40-pin header: the fixed power pins (the GPIO ones come from the pin map).
POWER = {1: "3V3", 2: "5V", 4: "5V", 17: "3V3", 6: "GND", 9: "GND", 14: "GND", 20: "GND", 25: "GND",
         30: "GND", 34: "GND", 39: "GND"}  # fmt: skip
LED_FILL = {"white": "#f4f4f4", "green": "#3cb043", "amber": "#ffbf00", "red": "#e0301e", "blue": "#2f6fdf"}


def text(x: float, y: float, s: str, size: int = 12, anchor: str = "start", weight: str = "normal") -> str:
    """An SVG text element."""
    return (
        f'<text x="{x}" y="{y}" font-family="DejaVu Sans, Arial, sans-serif" font-size="{size}" '
        f'text-anchor="{anchor}" font-weight="{weight}">{escape(s)}</text>'
    )


def box(x: float, y: float, w: float, h: float, fill: str = "#ffffff") -> str:
    """A rounded rectangle."""
    return f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6" fill="{fill}" stroke="#333" stroke-width="1.5"/>'


def line(points: list[tuple[float, float]], colour: str = "#333", width: float = 1.5) -> str:
    """A polyline through the points."""
    path = " ".join(f"{x},{y}" for x, y in points)
    return f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="{width}"/>'


def draw(pinmap: dict) -> str:
    """The whole diagram for a parsed pin map."""
    used: dict[int, tuple[str, str]] = {}
    for role, led in pinmap["leds"].items():
        used[led["physical"]] = (led["pin"], f"LED {role} ({led['colour']})")
    used[pinmap["button"]["physical"]] = (pinmap["button"]["pin"], "button")
    for role in ("enable", "kick"):
        ref = pinmap["relay"][role]
        used[ref["physical"]] = (ref["pin"], f"relay {role}")

    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="1100" height="760" viewBox="0 0 1100 760">']
    out.append('<rect width="1100" height="760" fill="#fbfbf8"/>')
    out.append(
        text(20, 30, "Lifeline HAT: wiring (drawn from hardware/pinmap.toml by hardware/wiring.py)", 16, weight="bold")
    )

    # The header, pin 1 top left; odd pins left column, even pins right column.
    hx, hy, pitch = 60, 70, 16
    out.append(box(hx - 10, hy - 20, 90, 20 * pitch + 30, "#e8f0e8"))
    out.append(text(hx + 35, hy - 26, "Pi header J8", 12, "middle", "bold"))
    anchors: dict[int, tuple[float, float]] = {}
    relay_rows: list[tuple[float, float]] = []
    for n in range(1, 41):
        col, row = (n - 1) % 2, (n - 1) // 2
        x, y = hx + 10 + col * 50, hy + row * pitch
        fill = "#d22" if POWER.get(n, "").startswith("5") else "#e90" if POWER.get(n) == "3V3" else "#555"
        fill = "#1a7" if n in used else fill if n in POWER else "#bbb"
        out.append(f'<circle cx="{x}" cy="{y}" r="5" fill="{fill}"/>')
        out.append(text(x + (8 if col else -8), y + 4, str(n), 8, "start" if col else "end"))
        anchors[n] = (x, y)

    # The functions, one row each, wired from their header pin.
    fx = 360
    rows = sorted(used.items(), key=lambda item: item[1][1])
    relay_x = {"relay enable": fx + 40, "relay kick": fx + 200}
    for i, (phys, (gpio, label)) in enumerate(rows):
        y = 90 + i * 44
        px, py = anchors[phys]
        # One vertical run per signal, so every wire can be followed from its pin.
        bus = 170 + i * 14
        end = relay_x.get(label, fx)
        out.append(line([(px, py), (bus, py), (bus, y), (end, y)], "#1a7"))
        out.append(text(bus + 6, y - 4, f"{gpio} · pin {phys}", 10))
        if label.startswith("LED"):
            colour = label.split("(")[1].rstrip(")")
            out.append(box(fx, y - 14, 260, 28))
            out.append(text(fx + 8, y + 4, "100R → 2N7002 gate (100k to GND)", 10))
            out.append(f'<circle cx="{fx + 290}" cy="{y}" r="9" fill="{LED_FILL[colour]}" stroke="#333"/>')
            out.append(text(fx + 306, y + 4, f"{label}", 10))
        elif label == "button":
            out.append(box(fx, y - 14, 260, 28))
            out.append(text(fx + 8, y + 4, "1k + 100nF to GND, pull-up in the SoC", 10))
            out.append(text(fx + 280, y + 4, "button to GND (front panel)", 10))
        else:
            pin = "CLR (100k to GND)" if "enable" in label else "B (100k to GND; A to GND)"
            out.append(text(end + 8, y + 14, f"{label} → U1 {pin}", 10))
            relay_rows.append((end, y))

    # The relay stage and the line.
    ry = 90 + len(rows) * 44 + 10
    for x, y in relay_rows:
        out.append(line([(x, y), (x, ry)], "#1a7"))
    out.append(box(fx, ry, 250, 70, "#f3ecff"))
    out.append(text(fx + 10, ry + 20, "U1 74LVC1G123 (retriggerable)", 10, weight="bold"))
    hold = pinmap["relay"]["hold_ms"]
    out.append(text(fx + 10, ry + 38, f"100k + 10µF: Q high ≈{hold} ms per rising kick", 10))
    out.append(text(fx + 10, ry + 56, "Q → 100R → AO3400 gate (100k to GND)", 10))
    out.append(line([(fx + 250, ry + 35), (620, ry + 35)]))
    out.append(box(620, ry, 160, 70, "#fff4e0"))
    out.append(text(630, ry + 20, "K1 DPDT telecom relay", 10, weight="bold"))
    out.append(text(630, ry + 38, "5V coil, 1N4148 across it", 10))
    out.append(text(630, ry + 56, "AO3400 switches the low side", 10))
    jy = ry + 110
    for i, (name, note) in enumerate(
        [
            ("LINE", "PSTN line in: K1 COM"),
            ("PHONE", "office phone/fax: K1 NC (bypass)"),
            ("MODEM", "voice modem line: K1 NO"),
        ]
    ):
        x = 560 + i * 180
        out.append(box(x, jy, 160, 44, "#eef6ff"))
        out.append(text(x + 80, jy + 18, f"RJ11 {name}", 11, "middle", "bold"))
        out.append(text(x + 80, jy + 34, note, 9, "middle"))
        out.append(line([(700, ry + 70), (700, jy - 10), (x + 80, jy - 10), (x + 80, jy)], "#36c"))
    out.append(
        text(560, jy + 70, "De-energised (dead, hung, stopped, rebooting, no power): LINE ↔ PHONE.", 11, weight="bold")
    )
    out.append(
        text(560, jy + 88, "Energised only while the daemon is healthy, owns the analog trunk and keeps kicking.", 11)
    )

    # USB side.
    ux, uy = 820, 290
    out.append(box(ux, uy, 250, 150, "#f0f0f0"))
    out.append(text(ux + 10, uy + 20, "Powered USB hub (own 5 V ≥ 3 A)", 11, weight="bold"))
    out.append(text(ux + 10, uy + 40, "← Pi USB 2.0 port", 10))
    out.append(text(ux + 10, uy + 65, "• LTE modem (EC25 / SIM7600 / E1550)", 10))
    out.append(text(ux + 10, uy + 85, "• analog voice modem (USR5637)", 10))
    out.append(text(ux + 10, uy + 105, "  its RJ11 → HAT jack MODEM", 10))
    out.append(text(ux + 10, uy + 130, "A Pi USB port alone cannot carry LTE bursts", 9))
    out.append(text(fx, 60, "LEDs: 5V → R (1k; 680R white/blue) → LED → 2N7002 drain; source to GND", 10))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    """Write wiring.svg, or with --check only compare."""
    svg = draw(tomllib.loads(PINMAP.read_text()))
    if argv == ["--check"]:
        if SVG.read_text() != svg:
            print(f"{SVG} is stale: run python3 {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    SVG.write_text(svg)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
