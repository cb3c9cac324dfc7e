"""GET /metrics: the daemon's status document in the Prometheus text exposition format.

Every scrape asks the daemon for its status (the document `lifeline status` shows) and maps it with
the pure function `families`; nothing is kept between scrapes, so each reflects the moment it is taken.
A field the status does not have (a part not configured, a probe without a result yet) gives no sample
rather than a made-up zero. The daemon's own CPU, memory and file descriptors come from
prometheus_client's ProcessCollector as lifeline_process_*.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from gateway.cdr.outbox import SinkState
from gateway.cdr.records import ClockKind
from gateway.core.mode import Mode, Override
from gateway.hw.patterns import FaultClass
from gateway.hw.relay import RelayState
from gateway.mirror.service import MirrorHealth
from gateway.sip.supervisor import KamailioState
from gateway.trunk.call import CallState
from gateway.trunk.driver import LinkState
from gateway.web.api import StatusProvider

# gateway.core.health.diagnose's answers; the trunk supervisor's states.
DIAGNOSES = ("ok", "lan", "wan", "cloud_sip", "cloud_api", "dns")
TRUNK_AGENT_STATES = ("stopped", "running", "restarting", "failed")


def _num(value: Any) -> float | None:
    """A number from the JSON document (bools count as 0/1), None when absent or not a number."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


class _Families:
    """Collects metric families in order; a family without samples is left out."""

    def __init__(self) -> None:
        self.out: list[Metric] = []

    def gauge(
        self, name: str, doc: str, samples: Iterable[tuple[Sequence[str], Any]], labels: Sequence[str] = ()
    ) -> None:
        family = GaugeMetricFamily(name, doc, labels=list(labels))
        self._add(family, samples)

    def counter(
        self, name: str, doc: str, samples: Iterable[tuple[Sequence[str], Any]], labels: Sequence[str] = ()
    ) -> None:
        family = CounterMetricFamily(name, doc, labels=list(labels))
        self._add(family, samples)

    def value(self, name: str, doc: str, value: Any) -> None:
        """A gauge without labels, if value is a number."""
        self.gauge(name, doc, [((), value)])

    def state_set(self, name: str, doc: str, label: str, states: Iterable[str], current: Any) -> None:
        """1 for the current state and 0 for the others (a current state not in the list is added)."""
        self.state_sets(name, doc, label, states, [((), current)])

    def state_sets(
        self,
        name: str,
        doc: str,
        label: str,
        states: Iterable[str],
        rows: Iterable[tuple[Sequence[str], Any]],
        keys: Sequence[str] = (),
    ) -> None:
        """A state set per row of (label values for keys, current state)."""
        known = list(states)
        samples: list[tuple[Sequence[str], Any]] = []
        for values, current in rows:
            if isinstance(current, str):
                samples.extend(((*values, s), s == current) for s in dict.fromkeys([*known, current]))
        self.gauge(name, doc, samples, [*keys, label])

    def _add(
        self, family: GaugeMetricFamily | CounterMetricFamily, samples: Iterable[tuple[Sequence[str], Any]]
    ) -> None:
        for labels, raw in samples:
            value = _num(raw)
            if value is not None:
                family.add_metric(list(labels), value)
        if family.samples:
            self.out.append(family)


def families(status: dict[str, Any]) -> list[Metric]:
    """The metric families of one status document (gateway.app.App.status)."""
    f = _Families()
    f.gauge("lifeline_build_info", "The running Lifeline version.", [((str(status.get("version")),), 1)], ["version"])
    f.value("lifeline_uptime_seconds", "Seconds since the daemon started.", status.get("uptime_s"))
    _mode(f, _dict(status.get("mode")))
    _health(f, _dict(status.get("health")))
    _sip(f, _dict(status.get("sip")), status.get("registrations"))
    f.value("lifeline_extensions", "Extensions in the local directory.", status.get("extensions"))
    alerts = _dict(status.get("alerts"))
    f.value("lifeline_alerts_pending", "Alerts not yet delivered (queued or waiting to retry).", alerts.get("pending"))
    f.value("lifeline_alerts_delivered", "Delivered alerts kept in the store.", alerts.get("delivered"))
    _mirror(f, _dict(status.get("mirror")))
    _cdr(f, _dict(status.get("cdr")))
    if isinstance(status.get("trunk"), dict):
        _trunk(f, status["trunk"])
    if isinstance(status.get("hardware"), dict):
        _hardware(f, status["hardware"])
    return f.out


def _mode(f: _Families, mode: dict[str, Any]) -> None:
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


def _health(f: _Families, health: dict[str, Any]) -> None:
    f.state_set(
        "lifeline_health_diagnosis", "Where the break is, from the probes.", "where", DIAGNOSES, health.get("where")
    )
    probes = [(str(name), _dict(p)) for name, p in _dict(health.get("probes")).items()]
    keys = ["probe", "kind"]

    def per_probe(field: str, scale: float = 1.0) -> list[tuple[Sequence[str], Any]]:
        out: list[tuple[Sequence[str], Any]] = []
        for name, p in probes:
            value = _num(p.get(field))
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


def _sip(f: _Families, sip: dict[str, Any], registrations: Any) -> None:
    kamailio = sip.get("kamailio")
    if isinstance(kamailio, dict):
        states = [s.value for s in KamailioState]
        f.state_set("lifeline_kamailio_state", "The Kamailio child's state.", "state", states, kamailio.get("state"))
        f.counter("lifeline_kamailio_restarts", "Kamailio restarts after it exited.", [((), kamailio.get("restarts"))])
    regs = _dict(registrations)
    f.value("lifeline_registered_users", "Users with a registration in Lifeline's location table.", regs.get("users"))
    f.value("lifeline_registered_contacts", "Contacts in Lifeline's location table.", regs.get("contacts"))
    edge = sip.get("edge")
    if isinstance(edge, dict):
        f.value(
            "lifeline_sip_banned_addresses",
            "Source addresses banned now for failed logins.",
            len(_list(edge.get("bans"))),
        )
        failed = sum(v for v in _dict(edge.get("failed_logins")).values() if isinstance(v, int))
        f.value("lifeline_sip_failed_logins", "Failed logins within the failure window, all extensions.", failed)
        f.value(
            "lifeline_sip_failing_sources",
            "Source addresses with failed logins within the failure window.",
            len(_dict(edge.get("failing_sources"))),
        )


def _mirror(f: _Families, mirror: dict[str, Any]) -> None:
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
        [((str(source),), n) for source, n in _dict(mirror.get("counts")).items()],
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
        len(_list(mirror.get("short_passwords"))),
    )


def _cdr(f: _Families, cdr: dict[str, Any]) -> None:
    if not cdr:
        return
    records = _dict(cdr.get("records"))
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
        _dict(cdr.get("clock")).get("source"),
    )
    f.value(
        "lifeline_cdr_last_purge_timestamp_seconds",
        "When old records were last purged (Unix time).",
        cdr.get("last_purge"),
    )
    sinks = [_dict(s) for s in _list(cdr.get("sinks"))]
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


def _trunk(f: _Families, trunk: dict[str, Any]) -> None:
    f.state_set(
        "lifeline_trunk_agent_state",
        "The trunk agent process's state.",
        "state",
        TRUNK_AGENT_STATES,
        trunk.get("state"),
    )
    f.counter("lifeline_trunk_agent_restarts", "Trunk agent restarts.", [((), trunk.get("restarts"))])
    if "registered" in trunk:
        f.value(
            "lifeline_trunk_sip_registered",
            "1 if the trunk agent's SIP account is registered with Kamailio.",
            trunk.get("registered") == 200,
        )
    minutes = _num(trunk.get("minutes_today"))
    f.value(
        "lifeline_trunk_outgoing_call_seconds_today",
        "Outgoing trunk call time today (what the daily limit counts; emergency calls excluded).",
        None if minutes is None else minutes * 60,
    )
    calls = [_dict(c) for c in _list(trunk.get("calls"))] if "calls" in trunk else None
    if calls is not None:
        f.gauge(
            "lifeline_trunk_calls",
            "Calls on the trunk now, by direction.",
            [((d,), sum(1 for c in calls if c.get("direction") == d)) for d in ("in", "out")],
            ["direction"],
        )
        f.value(
            "lifeline_trunk_emergency_calls",
            "Emergency calls on the trunk now.",
            sum(1 for c in calls if c.get("emergency")),
        )
    modems = [_dict(m) for m in _list(trunk.get("modems"))]
    key = ["modem"]

    def each(*path: str) -> list[tuple[Sequence[str], Any]]:
        """(modem name, the field at path) for each modem."""
        rows: list[tuple[Sequence[str], Any]] = []
        for m in modems:
            value: Any = m
            for step in path:
                value = _dict(value).get(step)
            rows.append(((str(m.get("name")),), value))
        return rows

    link_states = [s.value for s in LinkState]
    f.state_sets("lifeline_trunk_modem_state", "The modem link's state.", "state", link_states, each("state"), key)
    call_states = [s.value for s in CallState]
    f.state_sets("lifeline_trunk_modem_call_state", "The modem's call state.", "state", call_states, each("call"), key)
    info_keys = ("family", "model", "firmware", "operator", "access")
    f.gauge(
        "lifeline_trunk_modem_info",
        "The modem's identity and the network it is on.",
        [((str(m.get("name")), *(str(m.get(k) or "") for k in info_keys)), 1) for m in modems],
        [*key, *info_keys],
    )
    f.gauge(
        "lifeline_trunk_modem_last_change_timestamp_seconds",
        "When the modem's state last changed (Unix time).",
        each("since"),
        key,
    )
    f.gauge("lifeline_trunk_modem_signal_dbm", "Received signal strength.", each("signal", "dbm"), key)
    f.gauge("lifeline_trunk_modem_signal_bars", "Signal strength in bars (0-5).", each("signal", "bars"), key)
    f.gauge("lifeline_trunk_modem_registered", "1 if the modem is registered for voice.", each("registered"), key)
    f.gauge(
        "lifeline_trunk_modem_emergency_only",
        "1 if the modem has limited service (emergency calls only).",
        each("emergency_only"),
        key,
    )
    f.counter("lifeline_trunk_modem_resets", "Modem resets by the recovery ladder.", each("resets"), key)
    f.counter("lifeline_trunk_modem_stalls", "Times the modem stopped answering.", each("stalls"), key)
    f.counter(
        "lifeline_trunk_modem_realignments",
        "Times the PCM sample alignment was found again after lost audio bytes.",
        each("realignments"),
        key,
    )


def _hardware(f: _Families, hw: dict[str, Any]) -> None:
    f.state_set(
        "lifeline_hardware_relay", "Who has the analog line.", "state", [r.value for r in RelayState], hw.get("relay")
    )
    faults = {str(x) for x in _list(hw.get("faults"))}
    names = list(dict.fromkeys([*(c.name.lower() for c in FaultClass), *sorted(faults)]))
    f.gauge(
        "lifeline_hardware_fault",
        "1 for each fault the front panel shows.",
        [((n,), n in faults) for n in names],
        ["fault"],
    )
    f.value("lifeline_hardware_drill", "1 while a button drill runs.", hw.get("drill"))


class StatusCollector(Collector):
    """The families of one status document (a new one per scrape)."""

    def __init__(self, status: dict[str, Any]) -> None:
        self.status = status

    def collect(self) -> Iterable[Metric]:
        """The families of the document."""
        return families(self.status)


def render(status: dict[str, Any], *collectors: Collector) -> bytes:
    """The text exposition of a status document and any further collectors, on a private registry."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(status))
    for collector in collectors:
        registry.register(collector)
    return generate_latest(registry)


def add_metrics_routes(app: web.Application, status: StatusProvider) -> None:
    """GET /metrics: the status document and the daemon process's resources for Prometheus."""
    process = ProcessCollector(namespace="lifeline", registry=None)

    async def get_metrics(_request: web.Request) -> web.Response:
        body = render(await status(), process)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/metrics", get_metrics)
