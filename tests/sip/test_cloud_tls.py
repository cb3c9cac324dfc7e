"""Lifeline reaches a cloud SBC over TLS and checks its certificate (real Kamailio both sides, pjsua2 phones).

The lab cloud's certificate names its IP address (127.0.0.2; no host name resolves to it here), so
the probe checks that address in the certificate and Kamailio sends no SNI.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from gateway.config import parse
from gateway.errors import SipError
from gateway.lab.cloud import LabCloud
from gateway.lab.daemon import LifelineProcess
from gateway.lab.phones import SipEndpoint, talk
from gateway.sip.render import EdgeKeys, RenderInputs, TlsInputs, find_module_path, render
from gateway.sip.tls import SYSTEM_CA_BUNDLE, cloud_tls, tls_config, tls_files
from tests.conftest import (
    CLOUD_HOST,
    REALM,
    phone_via_lifeline,
    registered_via_lifeline,
    running_lifeline,
    start_lab_cloud,
)

pytestmark = pytest.mark.usefixtures("fresh_phones")

SBC = "sip:sbc.example.com:5061;transport=tls"


def test_the_system_bundle_is_where_debian_keeps_it() -> None:
    assert SYSTEM_CA_BUNDLE.is_file()


def check_render(tmp_path: Path, cloud: dict[str, object]) -> tuple[str, str]:
    """kamailio.cfg and tls.cfg for a TLS cloud, checked by `kamailio -c`."""
    config = parse(
        {"paths": {"data_dir": str(tmp_path)}, "sip": {"transports": ["udp", "tls"]}, "cloud": {"sbc": SBC, **cloud}}
    )
    tls = TlsInputs(5071, tls_files(config), tmp_path / "tls.cfg")
    tls.config_path.write_text(tls_config(tls.files, cloud_tls(config)))
    keys = EdgeKeys(caller="c" * 64, route="d" * 64)
    inputs = RenderInputs(
        5070, tmp_path / "rpc.sock", tmp_path / "l.db", False, find_module_path(None), "192.0.2.9", keys, tls
    )
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(render(config, inputs))
    check = subprocess.run(["kamailio", "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr[-2000:]
    return cfg.read_text(), tls.config_path.read_text()


def client_section(tls_cfg: str) -> str:
    return tls_cfg.split("[client:default]\n", 1)[1]


def test_a_tls_cloud_is_verified_against_the_system_cas_by_default(tmp_path: Path) -> None:
    kamailio_cfg, tls_cfg = check_render(tmp_path, {})
    client = client_section(tls_cfg)
    assert "verify_certificate = yes\nrequire_certificate = yes\n" in client
    assert f"ca_list = {SYSTEM_CA_BUNDLE}\n" in client
    # SNI names the SBC (the tls module sends none of its own)
    assert '#!define CLOUD_SNI "sbc.example.com"' in kamailio_cfg


def test_a_private_ca_is_named_by_cloud_ca_file_and_checked_to_exist(tmp_path: Path) -> None:
    ca_file = tmp_path / "cloud-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca_file))
    _, tls_cfg = check_render(tmp_path, {"ca_file": str(ca_file)})
    assert f"ca_list = {ca_file}\n" in client_section(tls_cfg)
    missing = parse({"cloud": {"sbc": SBC, "ca_file": str(tmp_path / "gone.pem")}})
    with pytest.raises(SipError, match=r"cloud\.ca_file = '.*gone\.pem': no such file"):
        cloud_tls(missing)


def test_tls_verify_false_turns_the_check_off(tmp_path: Path) -> None:
    _, tls_cfg = check_render(tmp_path, {"tls_verify": False})
    client = client_section(tls_cfg)
    assert "verify_certificate = no\nrequire_certificate = no\n" in client and "ca_list" not in client


# ----- end to end: a lab cloud on TLS -----


@pytest.fixture(scope="module")
def cloud_ca() -> trustme.CA:
    return trustme.CA()


@contextlib.contextmanager
def tls_cloud(workdir: Path, ca: trustme.CA, name: str = CLOUD_HOST) -> Iterator[LabCloud]:
    """The lab cloud with a TLS listener serving a certificate for name from ca."""
    workdir.mkdir(parents=True)
    chain = workdir / "sbc.pem"
    ca.issue_cert(name).private_key_and_cert_chain_pem.write_to_path(str(chain))
    lab = start_lab_cloud(workdir / "cloud", CLOUD_HOST, tls=(chain, chain))
    try:
        yield lab
    finally:
        lab.stop()


@contextlib.contextmanager
def lifeline_to(workdir: Path, lab: LabCloud, ca: trustme.CA | None, extensions_csv: Path) -> Iterator[LifelineProcess]:
    """Lifeline relaying to the lab cloud over TLS, trusting ca (cloud.ca_file; None: tls_verify = false)."""
    workdir.mkdir(parents=True)
    cloud: dict[str, Any] = {"sbc": lab.tls_uri, "realm": REALM, "tls_verify": ca is not None}
    if ca is not None:
        cloud["ca_file"] = str(workdir / "cloud-ca.pem")
        ca.cert_pem.write_to_path(cloud["ca_file"])
    with running_lifeline(workdir, extensions_csv, cloud, transports=["udp", "tls"], tls_port=0) as daemon:
        yield daemon


def cloud_probe(daemon: LifelineProcess, what: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The cloud-sip probe's status once done(it) holds (AssertionError naming what after 20 s).

    A busy box's probe may first time out (1 s) where the next one gets the answer: wait for the one asked for.
    """
    deadline = time.monotonic() + 20
    while True:
        probe: dict[str, Any] = daemon.status()["health"]["probes"]["cloud-sip"]
        if done(probe):
            return probe
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {probe}"
        time.sleep(0.2)


def test_phones_register_and_call_through_a_tls_cloud_with_a_private_ca(
    tmp_path: Path, sip_endpoint: SipEndpoint, cloud_ca: trustme.CA, extensions_csv: Path
) -> None:
    with (
        tls_cloud(tmp_path / "sbc", cloud_ca) as lab,
        lifeline_to(tmp_path / "lifeline", lab, cloud_ca, extensions_csv) as daemon,
    ):
        probe = cloud_probe(daemon, "the probe to reach the cloud", lambda p: p["ok"] is True)
        assert probe["detail"] == "200"
        ep = sip_endpoint
        alice, bob = registered_via_lifeline(ep, daemon, lab, "1001", "1002")
        # The cloud holds both bindings, taken over its TLS listener.
        assert f"tls:{CLOUD_HOST}:{lab.tls_port}" in json.dumps(lab.rpc.call_blocking("ul.dump"))
        assert {"1001", "1002"} <= set(lab.bindings())
        talk(ep, alice, bob, caller_hangs_up=True)
        assert daemon.status()["mode"]["mode"] == "normal"


def test_a_cloud_certificate_from_another_ca_is_refused(
    tmp_path: Path, sip_endpoint: SipEndpoint, cloud_ca: trustme.CA, extensions_csv: Path
) -> None:
    with (
        tls_cloud(tmp_path / "impostor", trustme.CA()) as lab,  # the right address, a CA Lifeline does not trust
        lifeline_to(tmp_path / "lifeline", lab, cloud_ca, extensions_csv) as daemon,
    ):
        daemon.set_mode("normal")  # relay to it whatever the probe says
        probe = cloud_probe(
            daemon, "the probe to refuse the cloud", lambda p: "CERTIFICATE_VERIFY_FAILED" in str(p["detail"])
        )
        assert probe["ok"] is False
        alice = phone_via_lifeline(sip_endpoint, daemon, lab, "1001")
        with pytest.raises(AssertionError, match="to register"):
            alice.register(timeout=4.0)  # no answer: Kamailio's handshake with the cloud failed
        assert lab.bindings() == {}
        assert daemon.wait_log("certificate verify failed")


def test_a_certificate_for_another_name_sends_lifeline_to_survival(
    tmp_path: Path, sip_endpoint: SipEndpoint, cloud_ca: trustme.CA, extensions_csv: Path
) -> None:
    # Kamailio 5.6 checks the chain only and would talk to this cloud; the probe checks the name too,
    # so Lifeline declares the cloud gone and serves the phones itself instead of relaying to it.
    with (
        tls_cloud(tmp_path / "elsewhere", cloud_ca, name="127.0.0.9") as lab,
        lifeline_to(tmp_path / "lifeline", lab, cloud_ca, extensions_csv) as daemon,
    ):
        probe = cloud_probe(daemon, "the probe to refuse the cloud", lambda p: "mismatch" in str(p["detail"]))
        assert probe["ok"] is False
        deadline = time.monotonic() + 10
        while daemon.status()["mode"]["mode"] != "survival":
            assert time.monotonic() < deadline, "Lifeline did not go to survival"
            time.sleep(0.2)
        assert phone_via_lifeline(sip_endpoint, daemon, lab, "1001").register() == 200  # Lifeline's own answer
        assert lab.bindings() == {}


def test_tls_verify_false_talks_to_any_certificate_and_says_so(
    tmp_path: Path, sip_endpoint: SipEndpoint, extensions_csv: Path
) -> None:
    with (
        tls_cloud(tmp_path / "self-signed", trustme.CA()) as lab,
        lifeline_to(tmp_path / "lifeline", lab, None, extensions_csv) as daemon,
    ):
        cloud_probe(daemon, "the probe to reach the cloud", lambda p: p["ok"] is True)
        assert phone_via_lifeline(sip_endpoint, daemon, lab, "1001").register() == 200
        assert "1001" in lab.bindings()
        assert "cloud.tls_verify = false" in daemon.log_path.read_text()
