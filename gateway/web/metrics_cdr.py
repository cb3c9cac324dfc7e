"""/metrics for call records and their delivery to the sinks."""

from __future__ import annotations

from typing import Any

from gateway.cdr.outbox import SinkState
from gateway.cdr.records import ClockKind
from gateway.web.metrics_families import Families, dict_of, list_of


def add_cdr(f: Families, cdr: dict[str, Any]) -> None:
    """Call records: by state, the clock they are stamped with, and each sink's delivery."""
    if not cdr:
        return
    records = dict_of(cdr.get("records"))
    f.gauge(
        "lifeline_cdr_records",
        "Call records in the store by state (open: calls in progress).",
        [((str(state),), n) for state, n in records.items()],
        ["state"],
    )
    f.counter("lifeline_cdr_captured", "Call records made final by this process.", [((), cdr.get("captured"))])
    f.state_set(
        "lifeline_cdr_clock_source",
        "The clock call records are stamped with.",
        "source",
        [k.value for k in ClockKind],
        dict_of(cdr.get("clock")).get("source"),
    )
    f.value(
        "lifeline_cdr_last_purge_timestamp_seconds",
        "When old records were last purged (Unix time).",
        cdr.get("last_purge"),
    )
    sinks = [dict_of(s) for s in list_of(cdr.get("sinks"))]
    f.gauge(
        "lifeline_cdr_outbox_records",
        "Records in a sink's outbox by state (pending: the undelivered backlog).",
        [
            ((str(s.get("name")), state), s.get(state))
            for s in sinks
            for state in ("pending", "delivered", "quarantined")
        ],
        ["sink", "state"],
    )
    f.counter(
        "lifeline_cdr_delivered",
        "Records a sink acknowledged, since the daemon started.",
        [((str(s.get("name")),), s.get("delivered_here")) for s in sinks],
        ["sink"],
    )
    f.counter(
        "lifeline_cdr_quarantined",
        "Records a sink rejected for good, since the daemon started.",
        [((str(s.get("name")),), s.get("quarantined_here")) for s in sinks],
        ["sink"],
    )
    f.counter(
        "lifeline_cdr_delivery_batches",
        "Batches sent to a sink, since the daemon started.",
        [((str(s.get("name")),), s.get("batches")) for s in sinks],
        ["sink"],
    )
    f.gauge(
        "lifeline_cdr_delivery_consecutive_failures",
        "Failed deliveries to a sink since its last success.",
        [((str(s.get("name")),), s.get("failures")) for s in sinks],
        ["sink"],
    )
    f.state_sets(
        "lifeline_cdr_sink_state",
        "What a sink's delivery is doing.",
        "state",
        [k.value for k in SinkState],
        [((str(s.get("name")),), s.get("state")) for s in sinks],
        ["sink"],
    )
