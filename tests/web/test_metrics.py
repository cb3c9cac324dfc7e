"""GET /metrics: the status document as Prometheus metrics, mapped purely and served by the real daemon.

tests/data/daemon_status.json is `lifeline status --json` of a real daemon (tests/web/capture_status.py):
a lab cloud answering the SIP probe, the trunk agent on the simulated Quectel modem, a file directory
mirror, a CDR webhook nobody listens on (one record in its backlog), two phones and one wrong password.
"""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from gateway.lab.cloud import LabCloud
from gateway.lab.daemon import LifelineProcess
from gateway.lab.phones import SipEndpoint
from gateway.web.metrics import add_metrics_routes, families, render
from tests.conftest import CLOUD_HOST, PASSWORDS

CAPTURED = Path(__file__).resolve().parent.parent / "data" / "daemon_status.json"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def captured() -> dict[str, Any]:
    return dict(json.loads(CAPTURED.read_text()))


def parse(text: str) -> Samples:
    """Every sample of a text exposition, by name and labels."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in samples, f"duplicate sample {key}"
            samples[key] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


def scraped(status: dict[str, Any]) -> Samples:
    return parse(render(status).decode())


def test_captured_status_maps_to_the_key_metrics() -> None:
    status = captured()
    m = scraped(status)
    assert all(name.startswith("lifeline_") for name in names(m))
    # The mode as a state set: 1 for the current one, 0 for the others.
    assert value(m, "lifeline_mode", mode="normal") == 1
    assert [value(m, "lifeline_mode", mode=x) for x in ("suspect", "survival", "recovering")] == [0, 0, 0]
    assert value(m, "lifeline_mode_override", override="auto") == 1
    assert value(m, "lifeline_mode_last_change_timestamp_seconds") == status["mode"]["since"]
    # The cloud SIP probe: its RTT in seconds, no loss.
    probe = {"probe": "cloud-sip", "kind": "sip"}
    assert status["health"]["probes"]["cloud-sip"]["rtt_ms"] > 0
    assert value(m, "lifeline_probe_rtt_seconds", **probe) == status["health"]["probes"]["cloud-sip"]["rtt_ms"] / 1000
    assert value(m, "lifeline_probe_loss_ratio", **probe) == 0
    assert value(m, "lifeline_probe_up", **probe) == 1
    assert value(m, "lifeline_health_diagnosis", where="ok") == 1
    # Two phones and the trunk agent are registered; 1003 tried a wrong password three times.
    assert value(m, "lifeline_registered_users") == 3
    assert value(m, "lifeline_sip_failed_logins") == 3
    assert value(m, "lifeline_sip_failing_sources") == 1
    assert value(m, "lifeline_sip_banned_addresses") == 0
    assert value(m, "lifeline_kamailio_state", state="running") == 1
    assert value(m, "lifeline_kamailio_restarts_total") == 0
    # The call record waits for a webhook that does not answer.
    assert value(m, "lifeline_cdr_outbox_records", sink="webhook", state="pending") == 1
    assert value(m, "lifeline_cdr_delivered_total", sink="webhook") == 0
    assert value(m, "lifeline_cdr_delivery_consecutive_failures", sink="webhook") >= 2
    assert value(m, "lifeline_cdr_sink_state", sink="webhook", state="backoff") == 1
    assert value(m, "lifeline_cdr_sink_state", sink="webhook", state="idle") == 0
    assert value(m, "lifeline_cdr_records", state="final") == 1
    assert value(m, "lifeline_cdr_captured_total") == 1
    # The simulated modem: ready on LTE at -67 dBm, and the agent's SIP account registered.
    modem = {"modem": "lte0"}
    assert value(m, "lifeline_trunk_modem_signal_dbm", **modem) == -67
    assert value(m, "lifeline_trunk_modem_signal_bars", **modem) == 4
    assert value(m, "lifeline_trunk_modem_state", state="ready", **modem) == 1
    assert value(m, "lifeline_trunk_modem_state", state="registering", **modem) == 0
    assert value(m, "lifeline_trunk_modem_registered", **modem) == 1
    assert value(m, "lifeline_trunk_modem_realignments_total", **modem) == 0
    assert value(m, "lifeline_trunk_sip_registered") == 1
    assert value(m, "lifeline_trunk_calls", direction="out") == 0
    info = dict(family="quectel", model="EC25", firmware="EC25EFAR06A08M4G", operator="Lab Mobile", access="LTE")
    assert value(m, "lifeline_trunk_modem_info", **modem, **info) == 1
    # The file mirror synced seconds before; the alert queue is empty.
    assert 0 < value(m, "lifeline_mirror_age_seconds") == status["mirror"]["age_s"] < 60
    assert value(m, "lifeline_mirror_extensions") == 2
    assert value(m, "lifeline_mirror_health", state="fresh") == 1
    assert value(m, "lifeline_mirror_last_success_timestamp_seconds") == status["mirror"]["last_ok"]
    assert value(m, "lifeline_extensions_by_source", source="file") == 2
    assert value(m, "lifeline_extensions") == 6
    assert value(m, "lifeline_alerts_pending") == 0
    assert value(m, "lifeline_uptime_seconds") == status["uptime_s"]
    assert value(m, "lifeline_build_info", version=status["version"]) == 1


def test_mapping_follows_the_document() -> None:
    status = captured()
    status["mode"].update(mode="survival", override="survival")
    status["health"]["probes"]["cloud-sip"].update(ok=False, rtt_ms=None, loss=0.25, misses_in_a_row=2)
    status["health"]["where"] = "cloud_sip"
    status["trunk"]["modems"][0].update(state="reset", signal=None)
    status["trunk"]["calls"] = [{"direction": "out", "emergency": True, "active": True}]
    status["sip"]["edge"]["bans"] = [{"address": "192.0.2.7", "until": 2e9, "bans": 1}]
    m = scraped(status)
    assert value(m, "lifeline_mode", mode="survival") == 1
    assert value(m, "lifeline_mode", mode="normal") == 0
    assert value(m, "lifeline_mode_override", override="survival") == 1
    probe = {"probe": "cloud-sip", "kind": "sip"}
    assert value(m, "lifeline_probe_up", **probe) == 0
    assert value(m, "lifeline_probe_loss_ratio", **probe) == 0.25
    assert value(m, "lifeline_probe_consecutive_misses", **probe) == 2
    assert "lifeline_probe_rtt_seconds" not in names(m)  # no RTT of a failed check: no sample, not a zero
    assert value(m, "lifeline_health_diagnosis", where="cloud_sip") == 1
    assert value(m, "lifeline_trunk_modem_state", modem="lte0", state="reset") == 1
    assert "lifeline_trunk_modem_signal_dbm" not in names(m)
    assert value(m, "lifeline_trunk_calls", direction="out") == 1
    assert value(m, "lifeline_trunk_emergency_calls") == 1
    assert value(m, "lifeline_sip_banned_addresses") == 1


def test_parts_not_configured_give_no_metrics() -> None:
    status = captured()
    status.update(trunk=None, registrations=None, hardware=None)
    status["sip"].update(kamailio=None, edge=None)
    status["cdr"]["sinks"] = []
    status["mirror"] = {"source": None, "health": "unconfigured", "stale": False, "counts": {}}
    got = names(scraped(status))
    assert not any(
        n.startswith(("lifeline_trunk_", "lifeline_kamailio_", "lifeline_sip_", "lifeline_registered_")) for n in got
    )
    assert not any(n.startswith("lifeline_cdr_outbox") or n.startswith("lifeline_mirror_age") for n in got)
    assert {"lifeline_mode", "lifeline_mirror_health", "lifeline_cdr_records", "lifeline_uptime_seconds"} <= got


def test_hardware_relay_and_faults() -> None:
    status = captured()
    status["hardware"] = {"relay": "held", "relay_reason": "trunk usable", "drill": False, "faults": ["network"]}
    m = scraped(status)
    assert value(m, "lifeline_hardware_relay", state="held") == 1
    assert value(m, "lifeline_hardware_fault", fault="network") == 1
    assert value(m, "lifeline_hardware_fault", fault="sip") == 0


def test_families_is_pure() -> None:
    status = captured()
    before = copy.deepcopy(status)
    first = [(f.name, f.samples) for f in families(status)]
    assert [(f.name, f.samples) for f in families(status)] == first
    assert status == before
    assert len({name for name, _ in first}) == len(first)  # each family once


async def test_each_scrape_reflects_the_status_of_that_moment() -> None:
    status = captured()

    async def provider() -> dict[str, Any]:
        return status

    app = web.Application()
    add_metrics_routes(app, provider)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/metrics")
        assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
        m = parse(await response.text())
        assert value(m, "lifeline_mode", mode="normal") == 1
        assert value(m, "lifeline_process_resident_memory_bytes") > 0  # this process, by ProcessCollector
        status["mode"]["mode"] = "survival"
        m = parse(await (await client.get("/metrics")).text())
        assert value(m, "lifeline_mode", mode="survival") == 1
        assert value(m, "lifeline_mode", mode="normal") == 0


# ---------------------------------------------------------------------------------- the real daemon


async def _scrape(socket: Path, mode: str | None = None) -> tuple[str, str]:
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(socket))) as session:
        if mode is not None:
            async with session.put("http://lifeline/api/v1/mode", json={"mode": mode}) as response:
                assert response.status == 200, await response.text()
        async with session.get("http://lifeline/metrics") as response:
            assert response.status == 200
            return response.headers["Content-Type"], await response.text()


def scrape(socket: Path, mode: str | None = None) -> Samples:
    """GET /metrics over the daemon's unix socket (after PUT /api/v1/mode if mode is given)."""
    content_type, text = asyncio.run(_scrape(socket, mode))
    assert content_type == CONTENT_TYPE_LATEST
    return parse(text)


def scrape_until(socket: Path, ready: Any, ep: SipEndpoint, what: str) -> Samples:
    """Scrape until ready(samples) holds (the daemon's probe and registrar work on their own schedule)."""
    last: Samples = {}

    def check() -> bool:
        nonlocal last
        last = scrape(socket)
        return bool(ready(last))

    ep.wait_for(check, timeout=20, what=what)
    return last


def registered(m: Samples) -> float:
    return value(m, "lifeline_registered_users")


@pytest.mark.usefixtures("fresh_phones")
def test_daemon_serves_metrics_that_follow_mode_and_registrations(
    sip_endpoint: SipEndpoint, cloud: LabCloud, lifeline: LifelineProcess
) -> None:
    socket = Path(lifeline.status()["paths"]["api_socket"])
    m = scrape_until(
        socket,
        lambda m: ("lifeline_probe_rtt_seconds", frozenset({("probe", "cloud-sip"), ("kind", "sip")})) in m,
        sip_endpoint,
        "the first cloud probe",
    )
    assert value(m, "lifeline_mode", mode="normal") == 1
    assert value(m, "lifeline_mode", mode="survival") == 0
    assert 0 < value(m, "lifeline_probe_rtt_seconds", probe="cloud-sip", kind="sip") < 1
    assert value(m, "lifeline_kamailio_state", state="running") == 1
    assert value(m, "lifeline_process_resident_memory_bytes") > 0
    assert value(m, "lifeline_extensions") == len(PASSWORDS)
    assert registered(m) == 0

    # A phone registers through Lifeline: the registrar's copy shows in the next scrape.
    alice = sip_endpoint.phone(
        "1001", PASSWORDS["1001"], domain=CLOUD_HOST, registrar=cloud.uri, proxy=f"sip:127.0.0.1:{lifeline.sip_port};lr"
    )
    assert alice.register() == 200
    scrape_until(socket, lambda m: registered(m) == 1, sip_endpoint, "the registration in the metrics")

    m = scrape(socket, mode="survival")
    assert value(m, "lifeline_mode", mode="survival") == 1
    assert value(m, "lifeline_mode", mode="normal") == 0
    assert value(m, "lifeline_mode_override", override="survival") == 1
    assert value(m, "lifeline_mode_detected", mode="normal") == 1  # the cloud still answers
