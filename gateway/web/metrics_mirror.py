"""/metrics for the directory mirror."""

from __future__ import annotations

from typing import Any

from gateway.mirror.service import MirrorHealth
from gateway.web.metrics_families import Families, dict_of, list_of


def add_mirror(f: Families, mirror: dict[str, Any]) -> None:
    """The directory mirror: its health, age, last sync and what it holds."""
    if not mirror:
        return
    f.state_set(
        "lifeline_mirror_health",
        "How trustworthy the directory mirror is.",
        "state",
        [h.value for h in MirrorHealth],
        mirror.get("health"),
    )
    f.value(
        "lifeline_mirror_stale", "1 if the mirror is older than allowed while the cloud answers.", mirror.get("stale")
    )
    f.gauge(
        "lifeline_extensions_by_source",
        "Extensions in the local directory, by the source that contributed them.",
        [((str(source),), n) for source, n in dict_of(mirror.get("counts")).items()],
        ["source"],
    )
    if mirror.get("source") is None:
        return
    f.value("lifeline_mirror_age_seconds", "Age of the mirrored directory.", mirror.get("age_s"))
    f.value(
        "lifeline_mirror_stale_after_seconds", "Age at which the mirror counts as stale.", mirror.get("stale_after_s")
    )
    f.value("lifeline_mirror_extensions", "Extensions in the last synced directory.", mirror.get("extensions"))
    f.value("lifeline_mirror_groups", "Ring groups in the last synced directory.", mirror.get("groups"))
    f.value(
        "lifeline_mirror_last_success_timestamp_seconds",
        "When a sync last succeeded (Unix time).",
        mirror.get("last_ok"),
    )
    f.value(
        "lifeline_mirror_last_attempt_timestamp_seconds",
        "When a sync was last attempted (Unix time).",
        mirror.get("last_attempt"),
    )
    f.value(
        "lifeline_mirror_last_error_timestamp_seconds",
        "When a sync last failed (Unix time).",
        mirror.get("last_error_at"),
    )
    f.value("lifeline_mirror_syncing", "1 while a sync runs.", mirror.get("syncing"))
    f.value(
        "lifeline_mirror_short_passwords",
        "Mirrored extensions whose password is too short.",
        len(list_of(mirror.get("short_passwords"))),
    )
