"""/metrics for who serves the phones and why: the mode and the health probes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.core.mode import Mode, Override
from gateway.web.metrics_families import Families, dict_of, num

# gateway.core.health.diagnose's answers.
DIAGNOSES = ("ok", "lan", "wan", "cloud_sip", "cloud_api", "dns")


def add_mode(f: Families, mode: dict[str, Any]) -> None:
    """Who serves the phones: the mode, what detection concludes, the override."""
    modes = [m.value for m in Mode]
    f.state_set("lifeline_mode", "Who serves the phones: 1 for the current mode.", "mode", modes, mode.get("mode"))
    f.state_set(
        "lifeline_mode_detected",
        "The mode automatic detection concludes (what applies once the override is auto).",
        "mode",
        modes,
        mode.get("detected"),
    )
    f.state_set(
        "lifeline_mode_override",
        "The manual override: 1 for the one set.",
        "override",
        [o.value for o in Override],
        mode.get("override"),
    )
    f.value(
        "lifeline_mode_last_change_timestamp_seconds", "When the current mode began (Unix time).", mode.get("since")
    )


def add_health(f: Families, health: dict[str, Any]) -> None:
    """The health probes: the diagnosis and each probe's last result."""
    f.state_set(
        "lifeline_health_diagnosis", "Where the break is, from the probes.", "where", DIAGNOSES, health.get("where")
    )
    probes = [(str(name), dict_of(p)) for name, p in dict_of(health.get("probes")).items()]
    keys = ["probe", "kind"]

    def per_probe(field: str, scale: float = 1.0) -> list[tuple[Sequence[str], Any]]:
        out: list[tuple[Sequence[str], Any]] = []
        for name, p in probes:
            value = num(p.get(field))
            out.append(((name, str(p.get("kind"))), None if value is None else value * scale))
        return out

    f.gauge("lifeline_probe_up", "1 if the probe's last check succeeded.", per_probe("ok"), keys)
    f.gauge("lifeline_probe_rtt_seconds", "Round-trip time of the probe's last check.", per_probe("rtt_ms", 1e-3), keys)
    f.gauge("lifeline_probe_loss_ratio", "Share of failed checks in the probe's window.", per_probe("loss"), keys)
    f.gauge("lifeline_probe_consecutive_misses", "Failed checks in a row.", per_probe("misses_in_a_row"), keys)
    f.gauge(
        "lifeline_probe_last_success_timestamp_seconds",
        "When the probe last succeeded (Unix time).",
        per_probe("last_ok_at"),
        keys,
    )
