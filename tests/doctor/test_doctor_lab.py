"""`lifeline doctor` against the real lab: the daemon and its Kamailio, the Kamailio cloud, a simulated modem."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from gateway.lab.cloud import LabCloud
from gateway.lab.daemon import LifelineProcess
from gateway.lab.phones import SipEndpoint
from gateway.sip.render import free_port
from gateway.trunk.profiles import Family
from gateway.trunk.sim import SimConfig
from gateway.trunk.sim.thread import SimThread
from tests.conftest import CLOUD_HOST, PASSWORDS, REALM

T = TypeVar("T")
AGENT = ("1009", "agent-doctor-1009")
CORE = ("config", "daemon", "kamailio", "sip-port", "mode", "cloud-sip", "mirror", "trunk-agent")
MODEM = ("modem", "sim", "network", "signal", "voice")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0) -> T:
    """Poll until probe() gives something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def doctor_json(daemon: LifelineProcess) -> tuple[int, dict[str, Any]]:
    done = daemon.cli("doctor", "--json", check=False)
    return done.returncode, json.loads(done.stdout)


def checks_by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["checks"]}


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short directory: the daemon's unix sockets must fit in 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="dr-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def trunked_daemon(workdir: Path, cloud: LabCloud, by_id: Path, extra: dict[str, dict[str, Any]]) -> LifelineProcess:
    """A daemon relaying to the lab cloud with a trunk modem looked for in by_id, extensions imported."""
    csv = workdir / "phones.csv"
    csv.write_text("number,password\n" + "".join(f"{n},{p}\n" for n, p in [*PASSWORDS.items(), AGENT]))
    settings = {"cloud": {"sbc": cloud.uri, "realm": REALM}, "sip": {"listen": "127.0.0.1", "children": 2}}
    daemon = LifelineProcess(workdir / "lifeline", {**settings, **extra})
    with daemon.config_path.open("a") as toml:
        toml.write(
            f'[trunk]\nextension = "{AGENT[0]}"\npoll_s = 1.0\n'
            f'[[trunk.modems]]\nname = "lte0"\nfamily = "quectel"\nby_id_dir = "{by_id}"\n'
        )
    daemon.cli("extensions", "import", str(csv))
    return daemon


@pytest.mark.usefixtures("fresh_phones")
def test_a_healthy_branch_passes_and_the_leds_are_described(
    workdir: Path, cloud: LabCloud, sip_endpoint: SipEndpoint
) -> None:
    sim = SimThread(SimConfig(Family.QUECTEL, time_scale=0.05), workdir / "by-id")
    sim.start()
    extra = {
        "sip": {"listen": "127.0.0.1", "children": 2, "transports": ["udp", "tcp", "tls"], "tls_port": 0},
        "hardware": {"enabled": True, "pin_factory": "mock", "console": str(workdir / "console")},
    }
    daemon = trunked_daemon(workdir, cloud, workdir / "by-id", extra)
    try:
        daemon.start()
        phone = sip_endpoint.phone(
            "1001",
            PASSWORDS["1001"],
            domain=CLOUD_HOST,
            registrar=cloud.uri,
            proxy=f"sip:127.0.0.1:{daemon.sip_port};lr",
        )
        assert phone.register() == 200

        def ready() -> bool:
            status = daemon.status()
            trunk = status.get("trunk") or {}
            modem = (trunk.get("modems") or [{}])[0]
            probed = status["health"]["probes"]["cloud-sip"]["ok"]
            # The panel follows the health loop: its trunk fault clears a moment after the modem is ready.
            panel_clear = status["hardware"]["faults"] == []
            return bool(trunk.get("registered") == 200 and modem.get("state") == "ready" and probed and panel_clear)

        wait_for("the trunk ready, the cloud probed and the panel clear", ready)
        code, report = doctor_json(daemon)
        checks = checks_by_name(report)
        assert code == 0 and report["ok"] is True, report
        for name in (*CORE, *MODEM, "disk", "phones", "certificate"):
            assert checks[name]["verdict"] == "pass", checks[name]
        assert checks["phones"]["detail"] == "1 phone(s) registered"  # the trunk agent is not counted
        assert checks["sip-port"]["detail"].startswith(f"sip:127.0.0.1:{daemon.sip_port};transport=udp answers")
        assert checks["certificate"]["detail"].startswith("Lifeline's own (self-signed): valid until")
        assert checks["clock"]["verdict"] != "fail"  # NTP, or at least the simulated network's time
        assert checks["leds"]["verdict"] == "look"
        assert "normal (green) on" in checks["leds"]["detail"] and "fault (red) off" in checks["leds"]["detail"]
        assert "trunk (blue) 4 short blink(s)" in checks["leds"]["detail"]  # the simulator's -67 dBm
        text = daemon.cli("doctor", check=False)
        assert text.returncode == 0
        assert "✓ cloud-sip" in text.stdout and "? leds" in text.stdout
        assert text.stdout.rstrip().endswith("0 failed, 5 skipped, 2 to look at: no failures")  # drill: not set up
    finally:
        daemon.stop()
        sim.stop()


def test_a_missing_modem_fails_and_says_where_to_plug_it(workdir: Path, cloud: LabCloud) -> None:
    by_id = workdir / "by-id"
    by_id.mkdir()  # udev made the directory, but no modem is plugged in
    daemon = trunked_daemon(workdir, cloud, by_id, {})
    try:
        daemon.start()
        wait_for(
            "the trunk agent registered, its modem absent",
            lambda: (
                (t := daemon.status().get("trunk") or {}).get("registered") == 200
                and (t.get("modems") or [{}])[0].get("state") == "absent"
            ),
        )
        code, report = doctor_json(daemon)
        checks = checks_by_name(report)
        assert code == 1 and report["ok"] is False
        assert checks["modem"]["verdict"] == "fail" and checks["modem"]["detail"].startswith("lte0: not found")
        assert f"`ls {by_id}` must list it" in checks["modem"]["fix"]
        assert [checks[n]["verdict"] for n in MODEM[1:]] == ["skip"] * 4
        assert checks["trunk-agent"]["verdict"] == "pass" and checks["cloud-sip"]["verdict"] == "pass"
    finally:
        daemon.stop()


def test_an_unreachable_cloud_fails_the_cloud_check(cloud: LabCloud, lifeline: LifelineProcess) -> None:
    wait_for("the first cloud probe", lambda: lifeline.status()["health"]["probes"]["cloud-sip"]["ok"])
    cloud.stop()
    wait_for("SURVIVAL", lambda: lifeline.status()["mode"]["mode"] == "survival")
    code, report = doctor_json(lifeline)
    checks = checks_by_name(report)
    assert code == 1
    sip = checks["cloud-sip"]
    assert sip["verdict"] == "fail" and sip["detail"].startswith(cloud.uri)
    assert "misses in a row" in sip["detail"] and "phones are served locally meanwhile" in sip["fix"]
    assert checks["mode"]["verdict"] == "warn" and checks["mode"]["detail"].startswith("SURVIVAL for")
    # Lifeline itself is fine: only the cloud is gone.
    assert [checks[n]["verdict"] for n in ("daemon", "kamailio", "sip-port")] == ["pass"] * 3
    text = lifeline.cli("doctor", check=False).stdout
    assert f"✗ cloud-sip    {cloud.uri}:" in text and "fix: " in text


def test_without_the_daemon_the_config_and_the_machine_are_still_checked(workdir: Path) -> None:
    port = free_port("127.0.0.1")  # nobody listens: Kamailio is not running
    daemon = LifelineProcess(
        workdir,
        {"cloud": {"sbc": f"sip:localhost:{free_port('127.0.0.1')}"}, "sip": {"listen": "127.0.0.1", "port": port}},
    )
    with daemon.config_path.open("a") as toml:
        toml.write('[trunk]\nextension = "1009"\n[[trunk.modems]]\nname = "lte0"\nfamily = "quectel"\n')
        toml.write(f'by_id_dir = "{workdir / "no-such-dir"}"\n')
    code, report = doctor_json(daemon)
    checks = checks_by_name(report)
    assert code == 1
    assert checks["config"]["verdict"] == "pass" and checks["disk"]["verdict"] == "pass"
    assert checks["daemon"]["verdict"] == "fail" and checks["daemon"]["detail"].startswith("not running: no daemon at")
    assert checks["daemon"]["fix"].startswith("`systemctl start lifeline` (or `lifeline run` in a shell)")
    assert checks["sip-port"]["verdict"] == "fail" and f"127.0.0.1:{port}" in checks["sip-port"]["detail"]
    # The doctor resolves the cloud's name itself only now, with nobody else probing it.
    assert checks["cloud-dns"]["verdict"] == "pass" and "looked up by the doctor" in checks["cloud-dns"]["detail"]
    assert checks["cloud-sip"]["verdict"] == "skip"
    assert checks["modem"]["verdict"] == "fail" and checks["modem"]["detail"] == "lte0: not found"


def test_a_bad_config_fails_naming_the_key_and_exits_2(workdir: Path) -> None:
    daemon = LifelineProcess(workdir, {"sip": {"port": "five"}})
    text = daemon.cli("doctor", check=False)
    assert text.returncode == 2
    first, second, fix = text.stdout.splitlines()[:3]
    assert first == f"✗ config       {daemon.config_path}: invalid configuration:"
    assert second.strip().startswith("sip.port = 'five'")
    assert (
        fix.strip() == f"fix: correct the key(s) named above in {daemon.config_path}, then `systemctl restart lifeline`"
    )
    assert "✓ disk" in text.stdout  # the machine is checked all the same
    code, report = doctor_json(daemon)
    checks = checks_by_name(report)
    assert code == 2 and report["ok"] is False
    assert checks["config"]["verdict"] == "fail" and "sip.port = 'five'" in checks["config"]["detail"]
    assert checks["daemon"]["verdict"] == "fail"  # its socket is found through the file's [paths]
    assert str(workdir / "run" / "lifeline.sock") in checks["daemon"]["detail"]
