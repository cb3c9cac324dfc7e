"""GET /metrics: the daemon's status document in the Prometheus text exposition format.

Every scrape asks the daemon for its status (the document `lifeline status` shows) and maps it with
the pure function `families`; nothing is kept between scrapes, so each reflects the moment it is taken.
A field the status does not have (a part not configured, a probe without a result yet) gives no sample
rather than a made-up zero. The daemon's own CPU, memory and file descriptors come from
prometheus_client's ProcessCollector as lifeline_process_*.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from gateway.web.api import StatusProvider
from gateway.web.metrics_cdr import add_cdr
from gateway.web.metrics_families import Families, dict_of
from gateway.web.metrics_mirror import add_mirror
from gateway.web.metrics_mode import add_health, add_mode
from gateway.web.metrics_sip import add_sip
from gateway.web.metrics_trunk import add_hardware, add_trunk


def families(status: dict[str, Any]) -> list[Metric]:
    """The metric families of one status document (gateway.app.App.status)."""
    f = Families()
    f.gauge("lifeline_build_info", "The running Lifeline version.", [((str(status.get("version")),), 1)], ["version"])
    f.value("lifeline_uptime_seconds", "Seconds since the daemon started.", status.get("uptime_s"))
    add_mode(f, dict_of(status.get("mode")))
    add_health(f, dict_of(status.get("health")))
    add_sip(f, dict_of(status.get("sip")), status.get("registrations"))
    f.value("lifeline_extensions", "Extensions in the local directory.", status.get("extensions"))
    alerts = dict_of(status.get("alerts"))
    f.value("lifeline_alerts_pending", "Alerts not yet delivered (queued or waiting to retry).", alerts.get("pending"))
    f.value("lifeline_alerts_delivered", "Delivered alerts kept in the store.", alerts.get("delivered"))
    add_mirror(f, dict_of(status.get("mirror")))
    add_cdr(f, dict_of(status.get("cdr")))
    if isinstance(status.get("trunk"), dict):
        add_trunk(f, status["trunk"])
    if isinstance(status.get("hardware"), dict):
        add_hardware(f, status["hardware"])
    return f.out


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
