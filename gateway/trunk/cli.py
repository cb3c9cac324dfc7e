"""What `lifeline status` prints about the trunk (the daemon's status JSON in, lines out)."""

from __future__ import annotations

from typing import Any


def status_lines(trunk: dict[str, Any] | None) -> list[str]:
    """Lines for the trunk: the agent, then one per modem, then calls in progress."""
    if not trunk:
        return []
    agent = f"agent {trunk.get('state')}, pid {trunk.get('pid')}, restarts {trunk.get('restarts')}"
    if trunk.get("registered") is not None:
        agent += f", SIP registration {trunk['registered']} as {trunk.get('extension')}"
    if trunk.get("problem"):
        agent += f" — {trunk['problem']}"
    lines = [f"{'trunk:':15}{agent}"]
    for modem in trunk.get("modems") or []:
        signal = modem.get("signal") or {}
        parts = [f"{modem.get('name')}: {str(modem.get('state')).upper()}"]
        if modem.get("operator"):
            parts.append(f"{modem['operator']} ({modem.get('access') or '?'})")
        if signal.get("dbm") is not None:
            parts.append(f"{signal['dbm']} dBm")
        if modem.get("problem"):
            parts.append(str(modem["problem"]))
        if modem.get("resets"):
            parts.append(f"{modem['resets']} resets")
        if modem.get("realignments"):
            # Bytes lost on the PCM tty (USB overruns): healed each time, but many point at a weak USB link.
            parts.append(f"audio realigned {modem['realignments']}×")
        lines.append(f"{'':15}{', '.join(parts)}")
    for call in trunk.get("calls") or []:
        who = "emergency " if call.get("emergency") else ""
        lines.append(
            f"{'':15}{who}call {call.get('direction')} {call.get('number')} on {call.get('modem')}"
            + (" (active)" if call.get("active") else " (setting up)")
        )
    if "minutes_today" in trunk:
        lines.append(f"{'':15}{trunk['minutes_today']} trunk minutes today")
    return lines
