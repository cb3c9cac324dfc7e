"""The doctor's checks as pure functions over hand-built facts: what an installer reads for each situation."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from gateway.config import Config, parse
from gateway.core.probes import ProbeResult
from gateway.doctor import Check, Facts, Verdict, confirm, exit_code, run_checks, summary, text_lines
from gateway.doctor.gather import paths_only, sip_target
from gateway.doctor.machine import parse_wear, read_certificate, read_wear
from gateway.doctor.model import Certificate, Disk
from gateway.doctor.panel import expected_leds

NOW = 1_800_000_000.0
GB = 1024**3
MODEM = {"name": "lte0", "family": "quectel", "by_id_dir": "/nonexistent/by-id", "match": "8671"}
CONFIG = parse(
    {
        "cloud": {"sbc": "sip:sbc.example.com:5060", "realm": "asterisk"},
        "health": {"lan_target": "off"},
        "trunk": {"extension": "1009", "modems": [MODEM]},
    }
)


def ready_modem(**changes: Any) -> dict[str, Any]:
    modem = {
        "name": "lte0",
        "family": "quectel",
        "state": "ready",
        "reason": "registered on Lab Mobile",
        "problem": None,
        "model": "EC25",
        "ident": "usb-Quectel_EC25-EG25_867123045678901",
        "operator": "Lab Mobile",
        "access": "LTE",
        "registered": True,
        "signal": {"rssi": 23, "dbm": -67, "bars": 4},
        "iccid": "89490200001234567890",
        "emergency_only": False,
    }
    return {**modem, **changes}


def probe(ok: bool | None, detail: str = "200", kind: str = "sip", **changes: Any) -> dict[str, Any]:
    values = {"kind": kind, "ok": ok, "rtt_ms": 3.2, "loss": 0.0, "samples": 20, "misses_in_a_row": 0}
    return {**values, "detail": detail, **changes}


def healthy_status(**changes: Any) -> dict[str, Any]:
    status: dict[str, Any] = {
        "version": "0.1.0",
        "pid": 4242,
        "uptime_s": 120.0,
        "mode": {"mode": "normal", "override": "auto", "since": NOW - 3600, "reason": "started", "detected": "normal"},
        "sip": {
            "listen": "0.0.0.0",
            "port": 5060,
            "transports": ["udp", "tcp"],
            "kamailio": {"state": "running", "pid": 4243, "restarts": 0},
        },
        "registrations": {"users": 3, "contacts": 3},
        "hardware": None,
        "health": {"where": "ok", "probes": {"cloud-sip": probe(True), "dns": probe(True, "resolved", "dns")}},
        "extensions": 3,
        "mirror": {"source": None, "health": "unconfigured", "stale": False, "counts": {}},
        "cdr": {"clock": {"source": "ntp", "anchor": None}},
        "trunk": {"state": "running", "pid": 4244, "registered": 200, "modems": [ready_modem()]},
    }
    return {**status, **changes}


def facts(status: dict[str, Any] | None = None, config: Config | None = CONFIG, **changes: Any) -> Facts:
    values: dict[str, Any] = {
        "config": config,
        "config_path": Path("/etc/lifeline/lifeline.toml"),
        "status": status,
        "sip_target": "sip:127.0.0.1:5060;transport=udp",
        "sip_answer": ProbeResult(True, 1.0, "200"),
        "disk": Disk(Path("/var/lib/lifeline"), 32 * GB, 20 * GB),
        "clock_synced": True,
        "now": NOW,
    }
    if status is None:
        values |= {"daemon_absent": True, "daemon_error": "no daemon at /run/lifeline/lifeline.sock"}
    return Facts(**(values | changes))


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def test_a_healthy_box_passes_and_exits_0() -> None:
    checks = run_checks(facts(healthy_status()))
    verdicts = {c.name: c.verdict for c in checks}
    for name in ("config", "daemon", "kamailio", "sip-port", "mode", "cloud-sip", "cloud-dns", "mirror", "modem"):
        assert verdicts[name] is Verdict.PASS, by_name(checks)[name]
    for name in ("trunk-agent", "sim", "network", "signal", "voice", "clock", "disk", "phones"):
        assert verdicts[name] is Verdict.PASS, by_name(checks)[name]
    assert by_name(checks)["phones"].detail == "2 phone(s) registered"  # the trunk agent is not a phone
    assert exit_code(checks, facts(healthy_status())) == 0
    assert summary(checks) == "17 passed, 0 warning(s), 0 failed, 7 skipped: no failures"  # drill: not set up


def test_an_unreachable_cloud_fails_with_where_the_break_is() -> None:
    status = healthy_status(
        health={
            "where": "wan",
            "probes": {
                "cloud-sip": probe(False, "no answer within 1.0 s", misses_in_a_row=7),
                "dns": probe(True, "1 name(s) resolved", "dns"),
            },
        }
    )
    checks = by_name(run_checks(facts(status)))
    sip = checks["cloud-sip"]
    assert sip.verdict is Verdict.FAIL
    assert sip.detail == "sip:sbc.example.com:5060: no answer within 1.0 s (7 misses in a row)"
    assert sip.fix is not None and sip.fix.startswith("neither the cloud's SIP edge nor its API answers")
    assert checks["cloud-dns"].verdict is Verdict.PASS  # the names resolve: the break is further out
    assert checks["daemon"].verdict is Verdict.PASS and checks["kamailio"].verdict is Verdict.PASS


def test_a_probe_that_loses_answers_warns_and_one_not_yet_run_asks_to_run_again() -> None:
    lossy = healthy_status(health={"where": "ok", "probes": {"cloud-sip": probe(True, loss=0.15)}})
    check = by_name(run_checks(facts(lossy)))["cloud-sip"]
    assert check.verdict is Verdict.WARN and "15% of the last 20 probes were lost" in check.detail
    fresh = healthy_status(health={"where": "ok", "probes": {"cloud-sip": probe(None)}})
    check = by_name(run_checks(facts(fresh)))["cloud-sip"]
    assert check.verdict is Verdict.WARN and check.fix == "run `lifeline doctor` again in a few seconds"


def test_lte_without_volte_fails_the_voice_check_not_the_registration() -> None:
    problem = (
        "registered on LTE without VoLTE: data works but calls cannot be placed "
        "(enable VoLTE/IMS on the modem and SIM, or use a network with 2G/3G)"
    )
    modem = ready_modem(state="registering", problem=problem, registered=False)
    status = healthy_status(trunk={"state": "running", "pid": 1, "registered": 200, "modems": [modem]})
    checks = by_name(run_checks(facts(status)))
    assert checks["network"].verdict is Verdict.PASS and "data only" in checks["network"].detail
    assert checks["voice"].verdict is Verdict.FAIL
    assert checks["voice"].fix is not None and "VoLTE" in checks["voice"].fix


def test_a_locked_sim_fails_and_the_network_waits_for_it() -> None:
    modem = ready_modem(state="sim", problem="SIM PIN required", operator=None, signal=None)
    status = healthy_status(trunk={"state": "running", "pid": 1, "registered": 200, "modems": [modem]})
    checks = by_name(run_checks(facts(status)))
    assert checks["modem"].verdict is Verdict.PASS
    assert checks["sim"].verdict is Verdict.FAIL and checks["sim"].detail == "lte0: SIM PIN required"
    assert checks["sim"].fix is not None and "sim_pin_file" in checks["sim"].fix
    assert [checks[n].verdict for n in ("network", "signal", "voice")] == [Verdict.SKIP] * 3


@pytest.mark.parametrize(
    ("rssi", "bars", "verdict"), [(99, 0, Verdict.FAIL), (2, 1, Verdict.WARN), (10, 2, Verdict.PASS)]
)
def test_signal_bars(rssi: int, bars: int, verdict: Verdict) -> None:
    dbm = None if rssi == 99 else -113 + 2 * rssi
    modem = ready_modem(signal={"rssi": rssi, "dbm": dbm, "bars": bars})
    status = healthy_status(trunk={"state": "running", "pid": 1, "registered": 200, "modems": [modem]})
    assert by_name(run_checks(facts(status)))["signal"].verdict is verdict


def test_a_missing_modem_fails_with_where_to_look() -> None:
    modem = {"name": "lte0", "family": "quectel", "state": "absent", "reason": "no ports found", "signal": None}
    status = healthy_status(trunk={"state": "running", "pid": 1, "registered": 200, "modems": [modem]})
    checks = by_name(run_checks(facts(status)))
    assert checks["modem"].verdict is Verdict.FAIL and checks["modem"].detail == "lte0: not found (no ports found)"
    assert checks["modem"].fix is not None and "`ls /nonexistent/by-id` must list it with '8671'" in checks["modem"].fix
    no_trunk = parse({"cloud": {"sbc": "sip:127.0.0.2:5060"}, "health": {"lan_target": "off"}})
    checks = by_name(run_checks(facts(healthy_status(trunk=None), config=no_trunk)))
    assert checks["modem"].verdict is Verdict.FAIL and "no [[trunk.modems]]" in checks["modem"].detail


def test_the_trunk_agent_must_be_registered_as_its_extension() -> None:
    status = healthy_status(trunk={"state": "running", "pid": 1, "registered": 403, "modems": [ready_modem()]})
    check = by_name(run_checks(facts(status)))["trunk-agent"]
    assert check.verdict is Verdict.FAIL and "as 1009 (SIP 403)" in check.detail
    assert check.fix is not None and "import extension 1009" in check.fix


@pytest.mark.parametrize(
    ("health", "verdict"),
    [("fresh", Verdict.PASS), ("failing", Verdict.WARN), ("stale", Verdict.FAIL), ("never_synced", Verdict.FAIL)],
)
def test_mirror_freshness(health: str, verdict: Verdict) -> None:
    mirror = {"source": "lifeline", "health": health, "extensions": 40, "last_ok": NOW - 7200, "last_error": None}
    check = by_name(run_checks(facts(healthy_status(mirror=mirror))))["mirror"]
    assert check.verdict is verdict
    if health != "never_synced":
        assert "40 extension(s), last good sync 2 h ago" in check.detail


def test_no_extensions_at_all_fails() -> None:
    check = by_name(run_checks(facts(healthy_status(extensions=0))))["mirror"]
    assert check.verdict is Verdict.FAIL and check.fix is not None and "extensions import" in check.fix


@pytest.mark.parametrize(
    ("source", "verdict"),
    [("ntp", Verdict.PASS), ("network", Verdict.WARN), ("monotonic", Verdict.WARN), ("unsynced", Verdict.FAIL)],
)
def test_clock_source(source: str, verdict: Verdict) -> None:
    status = healthy_status(cdr={"clock": {"source": source, "anchor": None}})
    assert by_name(run_checks(facts(status)))["clock"].verdict is verdict


def test_without_the_daemon_the_kernel_says_whether_the_clock_is_synced() -> None:
    no_trunk = parse({})
    assert by_name(run_checks(facts(None, no_trunk, clock_synced=False)))["clock"].verdict is Verdict.FAIL
    # With a modem the daemon would use the network's time: only a warning.
    assert by_name(run_checks(facts(None, CONFIG, clock_synced=False)))["clock"].verdict is Verdict.WARN
    assert by_name(run_checks(facts(None, CONFIG, clock_synced=True)))["clock"].verdict is Verdict.PASS


@pytest.mark.parametrize(
    ("free", "verdict"), [(50 * 1024**2, Verdict.FAIL), (2 * GB, Verdict.WARN), (8 * GB, Verdict.PASS)]
)
def test_disk_space(free: int, verdict: Verdict) -> None:
    check = by_name(run_checks(facts(healthy_status(), disk=Disk(Path("/var/lib/lifeline"), 32 * GB, free))))["disk"]
    assert check.verdict is verdict
    assert check.detail.endswith("at /var/lib/lifeline")


def test_emmc_wear_report(tmp_path: Path) -> None:
    assert read_wear(tmp_path / "mmcblk0") is None  # an SD card: no life_time
    device = tmp_path / "mmcblk0" / "device"
    device.mkdir(parents=True)
    (device / "life_time").write_text("0x02 0x09\n")
    (device / "pre_eol_info").write_text("0x01\n")
    wear = read_wear(tmp_path / "mmcblk0")
    assert wear is not None and wear.life == (2, 9) and wear.pre_eol == 1
    check = by_name(run_checks(facts(healthy_status(), wear=wear)))["sd-wear"]
    assert check.verdict is Verdict.WARN and check.detail == "mmcblk0: up to 90 % of its rated life used"
    worn = parse_wear("mmcblk0", "0x0B 0x03", "0x03")
    assert by_name(run_checks(facts(healthy_status(), wear=worn)))["sd-wear"].verdict is Verdict.FAIL
    with pytest.raises(ValueError, match="expected JEDEC estimates"):
        parse_wear("mmcblk0", "0x2A", None)
    assert by_name(run_checks(facts(healthy_status())))["sd-wear"].verdict is Verdict.SKIP


def write_certificate(path: Path, not_before: dt.datetime, not_after: dt.datetime) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pbx.example.com")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(Encoding.PEM))


@pytest.mark.parametrize(
    ("days_left", "verdict", "words"),
    [(400, Verdict.PASS, "valid until"), (10, Verdict.WARN, "in 9 day(s)"), (-1, Verdict.FAIL, "expired on")],
)
def test_a_configured_certificate_is_read_and_judged(
    tmp_path: Path, days_left: int, verdict: Verdict, words: str
) -> None:
    now = dt.datetime.fromtimestamp(NOW, dt.UTC)
    cert, key = tmp_path / "phones.crt", tmp_path / "phones.key"
    write_certificate(cert, now - dt.timedelta(days=30), now + dt.timedelta(days=days_left, hours=-1))
    key.write_text("unused")
    config = parse({"sip": {"transports": ["udp", "tls"], "tls_certificate": str(cert), "tls_private_key": str(key)}})
    check = by_name(run_checks(facts(healthy_status(), config=config, certificate=read_certificate(config))))
    assert check["certificate"].verdict is verdict and words in check["certificate"].detail


def test_a_missing_or_garbled_certificate_fails_naming_the_key(tmp_path: Path) -> None:
    key = tmp_path / "phones.key"
    config = parse(
        {"sip": {"transports": ["tls"], "tls_certificate": str(tmp_path / "gone.crt"), "tls_private_key": str(key)}}
    )
    check = by_name(run_checks(facts(healthy_status(), config=config, certificate=read_certificate(config))))
    assert check["certificate"].verdict is Verdict.FAIL
    assert check["certificate"].detail == f"sip.tls_certificate = '{tmp_path / 'gone.crt'}': no such file"
    (tmp_path / "gone.crt").write_text("not a certificate")
    check = by_name(run_checks(facts(healthy_status(), config=config, certificate=read_certificate(config))))
    assert "not a PEM certificate" in check["certificate"].detail
    assert read_certificate(parse({})) is None  # TLS off: nothing to read


def test_leds_are_described_for_the_installer_to_compare() -> None:
    status = healthy_status(
        mode={"mode": "survival", "override": "auto", "since": NOW, "reason": "cut", "detected": "survival"},
        hardware={"relay": "bypass", "relay_reason": "unhealthy", "drill": False, "faults": ["sip"]},
    )
    text = expected_leds(status)
    assert "normal (green) off" in text and "survival (amber) on" in text
    assert "fault (red) 1 short blink(s), then a pause" in text  # class 1: Kamailio down
    assert "trunk (blue) 4 short blink(s), then a pause" in text  # four bars
    config = parse({"hardware": {"enabled": True, "pin_factory": "mock"}})
    checks = by_name(run_checks(facts(status, config=config)))
    assert checks["leds"].verdict is Verdict.LOOK and checks["relay"].verdict is Verdict.LOOK
    assert checks["relay"].detail.startswith("released: the analog phone is straight on the PSTN line")


def test_answers_about_the_leds_pass_or_fail_them() -> None:
    config = parse({"hardware": {"enabled": True, "pin_factory": "mock"}})
    checks = run_checks(facts(healthy_status(hardware={"relay": "held", "faults": []}), config=config))
    answered = by_name(confirm(checks, lambda check: check.name != "relay"))
    assert answered["leds"].verdict is Verdict.PASS and answered["relay"].verdict is Verdict.FAIL
    assert by_name(confirm(checks, lambda check: None))["leds"].verdict is Verdict.LOOK


def test_without_the_daemon_it_fails_with_how_to_start_it() -> None:
    f = facts(None, sip_answer=ProbeResult(False, None, "ConnectionRefusedError: [Errno 111] Connection refused"))
    checks = run_checks(f)
    named = by_name(checks)
    assert named["daemon"].verdict is Verdict.FAIL and named["daemon"].fix is not None
    assert named["daemon"].fix.startswith("`systemctl start lifeline` (or `lifeline run` in a shell)")
    assert named["sip-port"].verdict is Verdict.FAIL
    assert named["modem"].verdict is Verdict.FAIL  # looked for by the doctor itself: no ports in /nonexistent
    assert named["config"].verdict is Verdict.PASS and named["disk"].verdict is Verdict.PASS
    assert exit_code(checks, f) == 1


def test_a_bad_config_exits_2_and_the_rest_waits_for_it() -> None:
    f = facts(None, config=None, config_error="x.toml: invalid configuration:\n  sip.port = 'five': not an int")
    checks = run_checks(f)
    assert exit_code(checks, f) == 2
    lines = text_lines(checks)
    assert lines[0] == "✗ config       x.toml: invalid configuration:"
    assert lines[1].strip() == "sip.port = 'five': not an int"
    assert lines[2].strip().startswith("fix: correct the key(s) named above in /etc/lifeline/lifeline.toml")
    assert by_name(checks)["cloud-sip"].detail == "the config comes first"


def test_text_shows_fixes_under_failures_and_warnings_only() -> None:
    checks = [
        Check("a", Verdict.PASS, "fine", "never shown"),
        Check("b", Verdict.WARN, "meh", "do this"),
        Check("c", Verdict.FAIL, "broken", "do that"),
    ]
    assert text_lines(checks) == [
        "✓ a            fine",
        "! b            meh",
        "               fix: do this",
        "✗ c            broken",
        "               fix: do that",
    ]
    assert json.loads(json.dumps([c.as_dict() for c in checks]))[2] == {
        "name": "c",
        "verdict": "fail",
        "detail": "broken",
        "fix": "do that",
    }


def test_the_sip_probe_goes_to_loopback_on_the_daemons_port() -> None:
    status = healthy_status()
    assert sip_target(CONFIG, status) == "sip:127.0.0.1:5060;transport=udp"
    status["sip"] |= {"listen": "::", "transports": ["tcp", "tls"]}
    assert sip_target(CONFIG, status) == "sip:[::1]:5060;transport=tcp"
    assert sip_target(CONFIG, None) is None  # port 0: chosen at start, unknown without the daemon
    assert sip_target(parse({"sip": {"port": 5070}}), None) == "sip:127.0.0.1:5070;transport=udp"
    assert sip_target(parse({"sip": {"port": 5061, "transports": ["tls"]}}), None) is None


def test_a_bad_config_still_tells_where_its_daemon_and_data_are(tmp_path: Path) -> None:
    path = tmp_path / "lifeline.toml"
    path.write_text(f'[paths]\ndata_dir = "{tmp_path}/data"\n[sip]\nport = "five"\n')
    assert paths_only(path).data_dir == tmp_path / "data"
    path.write_text("not toml [")
    assert paths_only(path).data_dir == Config().data_dir


def test_lifelines_own_certificate_not_made_yet_only_warns() -> None:
    own = Certificate(Path("/var/lib/lifeline/tls/lifeline.crt"), own=True, error="no such file")
    config = parse({"sip": {"transports": ["udp", "tls"]}})
    check = by_name(run_checks(facts(healthy_status(), config=config, certificate=own)))["certificate"]
    assert check.verdict is Verdict.WARN and "Lifeline makes its own" in check.detail


def test_without_root_the_fix_is_sudo() -> None:
    unreadable = "/etc/lifeline/lifeline.toml: cannot read: [Errno 13] Permission denied: '/etc/lifeline/lifeline.toml'"
    denied = "cannot talk to the daemon at /run/lifeline/lifeline.sock: [Errno 13] Permission denied"
    f = facts(None, config=None, config_error=unreadable, daemon_absent=False, daemon_error=denied)
    checks = by_name(run_checks(f))
    assert checks["config"].fix == "run it as root: `sudo lifeline doctor`"
    assert checks["daemon"].verdict is Verdict.FAIL and checks["daemon"].fix == "run it as root: `sudo lifeline doctor`"
