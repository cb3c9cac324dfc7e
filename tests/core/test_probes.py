from __future__ import annotations

import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trustme
from aiohttp import web

from gateway.core.health import diagnose
from gateway.core.probes import HttpsProbe, LanProbe, SbcSetProbe, SipOptionsProbe, default_gateway
from gateway.lab.cloud import LabCloud
from gateway.sip.render import free_port
from tests.conftest import wait_udp_bound

DATA = Path(__file__).parent.parent / "data"


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_sip_probe_sees_a_live_cloud_and_a_frozen_one(cloud: LabCloud, transport: str) -> None:
    probe = SipOptionsProbe(f"{cloud.uri};transport={transport}", timeout=1.0)
    alive = await probe.check()
    assert alive.ok and alive.detail == "200" and alive.rtt_ms is not None
    cloud.pause()
    try:
        frozen = await probe.check()
    finally:
        cloud.resume()
    assert not frozen.ok and "no answer within 1.0 s" in frozen.detail


async def test_the_sbc_set_is_up_while_one_sbc_answers_and_marks_a_silent_one_down_after_two_misses(
    cloud: LabCloud,
) -> None:
    dead = f"sip:127.0.0.1:{free_port('127.0.0.1')}"
    # 2 s: the lab cloud must answer in time on a busy box; the dead port is refused at once anyway.
    probe = SbcSetProbe([SipOptionsProbe(dead, timeout=2.0), SipOptionsProbe(cloud.uri, timeout=2.0)])
    assert [s["state"] for s in probe.status()] == ["unknown", "unknown"]
    first = await probe.check()
    assert first.ok and first.rtt_ms is not None and cloud.uri in first.detail
    assert probe.up() == [True, True]  # one lost probe moves no calls
    await probe.check()
    assert probe.up() == [False, True]
    shown = probe.status()
    assert [(s["uri"], s["state"]) for s in shown] == [(dead, "down"), (cloud.uri, "up")]
    assert shown[0]["rtt_ms"] is None and shown[1]["rtt_ms"] is not None
    cloud.pause()
    try:
        gone = await probe.check()
    finally:
        cloud.resume()
    assert not gone.ok and dead in gone.detail and cloud.uri in gone.detail


async def test_sip_probe_fails_fast_on_a_closed_port() -> None:
    result = await SipOptionsProbe(f"sip:127.0.0.1:{free_port('127.0.0.1')}", timeout=2.0).check()
    assert not result.ok and "refused" in result.detail.lower()


@pytest.fixture
def sipp_404(tmp_path: Path) -> Iterator[int]:
    port = free_port("127.0.0.1")
    proc = subprocess.Popen(
        ["sipp", "-sf", str(DATA / "sipp_options_404.xml"), "-i", "127.0.0.1", "-p", str(port), "-m", "1", "-nostdin"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    try:
        wait_udp_bound(port)  # a probe sent before sipp binds is refused (a loaded box takes seconds to start it)
    except AssertionError:
        proc.kill()
        proc.wait()
        raise
    yield port
    proc.kill()
    proc.wait()


async def test_a_404_from_the_pbx_still_means_alive(sipp_404: int) -> None:
    result = await SipOptionsProbe(f"sip:127.0.0.1:{sipp_404}", timeout=2.0).check()
    assert result.ok and result.detail == "404"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def https_api(ca: trustme.CA) -> AsyncIterator[str]:
    app = web.Application()

    async def guarded(_request: web.Request) -> web.Response:
        return web.json_response({"error": "token required"}, status=401)

    app.router.add_get("/", guarded)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port("127.0.0.1")
    site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=context)
    await site.start()
    yield f"https://127.0.0.1:{port}/"
    await runner.cleanup()


async def test_https_probe_counts_any_http_answer(https_api: str, ca: trustme.CA, tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    result = await HttpsProbe(https_api, 2.0, ca_file).check()
    assert result.ok and result.detail == "HTTP 401"


async def test_https_probe_refuses_an_untrusted_certificate(https_api: str) -> None:
    result = await HttpsProbe(https_api, 2.0).check()
    assert not result.ok and "certificate" in result.detail.lower()


async def test_lan_probe_pings_its_target() -> None:
    assert (await LanProbe("127.0.0.1", 1.0).check()).ok


def test_default_gateway_is_read_from_the_route_table() -> None:
    assert default_gateway((DATA / "proc_net_route.txt").read_text()) == "192.168.2.1"
    assert default_gateway("Iface\tDestination\tGateway\n") is None


@pytest.mark.parametrize(
    ("sip", "api", "dns", "lan", "where"),
    [
        (True, True, True, True, "ok"),
        (None, None, None, None, "ok"),
        (False, False, False, False, "lan"),
        (False, False, False, True, "wan"),
        (False, True, True, True, "cloud_sip"),
        (True, False, True, True, "cloud_api"),
        (True, True, False, True, "dns"),
        (True, False, False, True, "dns"),
    ],
)
def test_diagnosis_names_where_the_break_is(
    sip: bool | None, api: bool | None, dns: bool | None, lan: bool | None, where: str
) -> None:
    assert diagnose(sip, api, dns, lan) == where
