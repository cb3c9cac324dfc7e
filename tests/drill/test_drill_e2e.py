"""`lifeline drill` against the real daemon: real Kamailio (and a lab cloud), real pjsua2 phones, real SQLite."""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import pytest

from gateway.cli.client import request
from gateway.errors import DaemonRequestError
from gateway.lab.cloud import LabCloud
from gateway.lab.daemon import LifelineProcess
from gateway.lab.phones import Phone, SipEndpoint
from gateway.lab.waits import wait_until
from gateway.trunk import tones
from gateway.trunk.sim import FarEnd
from gateway.trunk.sim.thread import SimThread
from tests.conftest import CLOUD_HOST, PASSWORDS, REALM
from tests.trunk.lab import quectel_sim, start_trunked

pytestmark = pytest.mark.usefixtures("fresh_phones")

DRILL = {"1901": "drill-caller-secret-1901", "1902": "drill-callee-secret-1902"}


def drill_csv(path: Path) -> Path:
    path.write_text("number,password,name\n" + "".join(f"{n},{p},Drill {n}\n" for n, p in DRILL.items()))
    return path


def api(daemon: LifelineProcess, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    return asyncio.run(request(daemon.workdir / "run" / "lifeline.sock", method, path, body))


def text(daemon: LifelineProcess, path: str) -> tuple[int, str, str]:
    async def get() -> tuple[int, str, str]:
        connector = aiohttp.UnixConnector(path=str(daemon.workdir / "run" / "lifeline.sock"))
        async with aiohttp.ClientSession(connector=connector) as session, session.get(f"http://x{path}") as response:
            return response.status, response.content_type, await response.text()

    return asyncio.run(get())


def drill_cli(daemon: LifelineProcess, *args: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "gateway", "--config", str(daemon.config_path), "drill", *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def phone_via_lifeline(ep: SipEndpoint, daemon: LifelineProcess, cloud: LabCloud, user: str) -> Phone:
    """A desk phone registered to the cloud with Lifeline as its outbound proxy."""
    proxy = f"sip:127.0.0.1:{daemon.sip_port};lr"
    return ep.phone(user, PASSWORDS[user], domain=CLOUD_HOST, registrar=cloud.uri, proxy=proxy)


def test_a_drill_fails_over_calls_with_audio_both_ways_fails_back_and_delivers_the_record(
    tmp_path: Path, sip_endpoint: SipEndpoint, cloud: LabCloud, extensions_csv: Path
) -> None:
    out = tmp_path / "reports"
    daemon = LifelineProcess(
        tmp_path / "lifeline",
        {
            "cloud": {"sbc": cloud.uri, "realm": REALM},
            "sip": {"listen": "127.0.0.1", "children": 2},
            "cdr": {"interval_s": 0.5},
            "cdr.csv": {"directory": str(tmp_path / "cdr-out")},
            "drill": {"caller": "1901", "callee": "1902"},
        },
    )
    daemon.cli("extensions", "import", str(extensions_csv))
    daemon.cli("extensions", "import", str(drill_csv(tmp_path / "drill.csv")))
    daemon.start()
    try:
        phones = [phone_via_lifeline(sip_endpoint, daemon, cloud, user) for user in ("1001", "1002")]
        assert [phone.register() for phone in phones] == [200, 200]

        cli = drill_cli(daemon, "--json", "--out", str(out))
        wait_until(lambda: bool(api(daemon, "GET", "/api/v1/drill")["running"]), "the drill to run", 30, 0.05)
        with pytest.raises(DaemonRequestError, match=r"HTTP 409.*one at a time"):
            api(daemon, "POST", "/api/v1/drill", {})
        stdout, stderr = cli.communicate(timeout=120)
        assert cli.returncode == 0, stdout + stderr
        report = json.loads(stdout)  # --json: nothing but the report on stdout

        assert report["passed"] is True and report["state"] == "done"
        assert report["failover_s"] > 0 and report["failback_s"] > 0
        assert {"1001", "1002"} <= set(report["registrations"]["carried"])
        assert report["registrations"]["missing"] == []
        (call,) = report["calls"]
        assert (call["caller"], call["to"], call["code"]) == ("1901", "1902", 200)
        assert call["audio"]["callee"]["heard_hz"] == 1000 and call["audio"]["callee"]["ok"]
        assert call["audio"]["caller"]["heard_hz"] == 2000 and call["audio"]["caller"]["ok"]
        (record,) = report["records"]
        assert record["call_id"] == call["call_id"] and record["mode"] == "survival"
        assert record["delivery"] == {"csv": "delivered"}
        assert (report["mode_after"]["mode"], report["mode_after"]["override"]) == ("normal", "auto")
        assert all(check["outcome"] != "fail" for check in report["checks"])

        status = api(daemon, "GET", "/api/v1/status")
        assert (status["mode"]["mode"], status["mode"]["override"]) == ("normal", "auto")
        assert status["drill"]["last"]["id"] == report["id"] and status["drill"]["last"]["passed"]
        assert f"{report['id']}.html" in daemon.cli("status").stdout  # `lifeline status` names the last report

        # The reports: on the box (0600), through the API, and a copy where --out said.
        page = (out / f"{report['id']}.html").read_text()
        assert 'id="verdict">PASS<' in page
        assert "Kamailio serves the phones locally" in page and "relaying to the cloud again" in page
        on_box = Path(report["reports"]["html"])
        assert on_box.read_text() == page and on_box.stat().st_mode & 0o777 == 0o600
        code, kind, served = text(daemon, f"/api/v1/drill/report/{report['id']}.html")
        assert (code, kind, served) == (200, "text/html", page)
        assert api(daemon, "GET", f"/api/v1/drill/report/{report['id']}.json")["id"] == report["id"]
        assert text(daemon, "/api/v1/drill/report/..%2F..%2Flifeline.db.json")[0] == 404

        # The test extensions' digests went to the drill's phone on its stdin only.
        ha1 = hashlib.md5(f"1902:{REALM}:{DRILL['1902']}".encode()).hexdigest()
        for written in (daemon.log_path, on_box, Path(report["reports"]["json"])):
            assert ha1 not in written.read_text()
    finally:
        daemon.stop()


class AlertReceiver(http.server.BaseHTTPRequestHandler):
    """A webhook endpoint that keeps what it is sent."""

    received: ClassVar[list[dict[str, Any]]] = []
    arrived: ClassVar[threading.Event] = threading.Event()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append(body)
        type(self).arrived.set()
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def alert_url() -> Iterator[str]:
    AlertReceiver.received = []
    AlertReceiver.arrived = threading.Event()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), AlertReceiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts"
    server.shutdown()


def test_a_failing_drill_names_each_failed_check_with_its_fix_exits_1_and_raises_the_alert(
    tmp_path: Path, alert_url: str
) -> None:
    secret = tmp_path / "whsec"
    secret.write_text("whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    daemon = LifelineProcess(
        tmp_path / "lifeline",
        {
            "sip": {"listen": "127.0.0.1", "children": 2},
            "alerts": {"webhook_url": alert_url, "webhook_secret_file": str(secret)},
            # The callee was never imported; no trunk takes the trunk number.
            "drill": {"caller": "1901", "callee": "1999", "trunk_number": "+4930123456"},
        },
    )
    daemon.cli("extensions", "import", str(drill_csv(tmp_path / "drill.csv")))
    daemon.start()
    try:
        # A box already in SURVIVAL (a real outage, or a hand override) is not drilled unless forced.
        api(daemon, "PUT", "/api/v1/mode", {"mode": "survival"})
        with pytest.raises(DaemonRequestError, match=r"HTTP 409.*SURVIVAL.*not NORMAL"):
            api(daemon, "POST", "/api/v1/drill", {})
        api(daemon, "PUT", "/api/v1/mode", {"mode": "auto"})

        done = daemon.cli("drill", check=False, timeout=120)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "FAIL  test extensions: test extension(s) 1999 not in the store" in done.stdout
        assert "fix: import them (`lifeline extensions import`)" in done.stdout
        assert "FAIL  trunk call 1901 → +4930123456: not answered: 404 Not Found" in done.stdout
        assert "fix: no trunk took the call: configure [trunk] modems" in done.stdout
        assert "failing_back" in done.stdout  # the progress lines, as the steps finished

        status = api(daemon, "GET", "/api/v1/status")
        assert (status["mode"]["mode"], status["mode"]["override"]) == ("normal", "auto")
        last = status["drill"]["last"]
        assert last["passed"] is False and set(last["failed"]) == {"test extensions", "trunk call 1901 → +4930123456"}
        report = json.loads(Path(last["reports"]["json"]).read_text())
        assert report["failover_s"] > 0 and report["failback_s"] > 0
        event = next(e for e in status["events"] if e["kind"] == "drill")
        assert event["message"].startswith(f"drill {last['id']} FAILED: test extensions")

        assert AlertReceiver.arrived.wait(30), "no alert reached the webhook"
        wait_until(
            lambda: any(a["type"] == "drill.failed" for a in AlertReceiver.received), "the drill alert", 30, 0.05
        )
        alert = next(a for a in AlertReceiver.received if a["type"] == "drill.failed")
        assert alert["data"]["id"] == last["id"]
        assert any("[trunk] modems" in (c["fix"] or "") for c in alert["data"]["checks"])
    finally:
        daemon.stop()


def test_a_drill_cut_short_by_a_crash_gives_the_override_back_at_the_next_start(tmp_path: Path) -> None:
    daemon = LifelineProcess(
        tmp_path / "lifeline",
        {"sip": {"listen": "127.0.0.1", "children": 2}, "drill": {"caller": "1901", "callee": "1902"}},
    )
    daemon.cli("extensions", "import", str(drill_csv(tmp_path / "drill.csv")))
    pid = daemon.start()["pid"]
    try:
        api(daemon, "POST", "/api/v1/drill", {})
        wait_until(
            lambda: api(daemon, "GET", "/api/v1/drill")["state"] == "checking", "the drill to hold SURVIVAL", 30, 0.05
        )
        assert api(daemon, "GET", "/api/v1/status")["mode"]["override"] == "survival"
        os.kill(pid, signal.SIGKILL)
        daemon.stop()  # reaps it
        assert daemon.start()["pid"] != pid
        status = api(daemon, "GET", "/api/v1/status")
        assert (status["mode"]["mode"], status["mode"]["override"]) == ("normal", "auto")
        assert any("cut short by a daemon restart" in e["message"] for e in status["events"])
    finally:
        daemon.stop()


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimThread]:
    far = FarEnd(source=tones.Tone((425.0,)), answer_after_s=1.0)
    with quectel_sim(tmp_path / "by-id", 7, far, max_rings=400) as thread:
        yield thread


def test_the_emergency_test_calls_the_configured_test_number_through_the_trunk(tmp_path: Path, sim: SimThread) -> None:
    drill = {"caller": "1901", "callee": "1902", "trunk_number": "0301234567", "emergency_test_number": "933"}
    daemon = start_trunked(tmp_path, sim.sim.by_id_dir, {"drill": drill})
    try:
        daemon.cli("extensions", "import", str(drill_csv(tmp_path / "drill.csv")))
        daemon.set_mode("auto")  # start_trunked leaves the box in SURVIVAL by hand
        done = daemon.cli("drill", "--emergency-test", "--json", check=False, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        report = json.loads(done.stdout)
        calls = {call["kind"]: call for call in report["calls"]}
        assert set(calls) == {"extension", "trunk", "emergency_test"}
        assert (calls["emergency_test"]["to"], calls["emergency_test"]["code"]) == ("933", 200)
        assert calls["trunk"]["answered"] and calls["extension"]["audio"]["caller"]["ok"]
        # Dialled as the test number it is: no emergency call, so no emergency notice went out.
        assert not any(e["kind"] == "emergency" for e in api(daemon, "GET", "/api/v1/status")["events"])
        assert {r["mode"] for r in report["records"]} == {"survival"}
    finally:
        daemon.stop()
