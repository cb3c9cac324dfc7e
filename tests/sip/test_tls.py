"""TLS for phones: Lifeline's own certificate on the first start, TLS 1.2 and newer only, a pjsua2 phone over it."""

from __future__ import annotations

import json
import socket
import ssl
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pjsua2 as pj
import pytest
from cryptography import x509

from gateway.config import parse
from gateway.errors import SipError
from gateway.lab.daemon import LifelineProcess
from gateway.lab.phones import Phone, SipEndpoint
from gateway.sip.render import EdgeKeys, RenderInputs, TlsInputs, find_module_path, free_port, render
from gateway.sip.rpc import KamailioRpc
from gateway.sip.tls import OWN_CERT, OWN_DIR, OWN_KEY, tls_config, tls_files
from tests.trunk.lab import DOMAIN, PASSWORDS

pytestmark = pytest.mark.usefixtures("fresh_phones")


def test_lifeline_makes_its_certificate_once_and_keeps_its_key_private(tmp_path: Path) -> None:
    config = parse({"paths": {"data_dir": str(tmp_path)}, "sip": {"transports": ["udp", "tls"]}})
    first = tls_files(config)
    assert (first.certificate, first.private_key) == (tmp_path / OWN_DIR / OWN_CERT, tmp_path / OWN_DIR / OWN_KEY)
    assert stat.S_IMODE(first.private_key.stat().st_mode) == 0o600
    pem = first.certificate.read_bytes()
    assert tls_files(config) == first and first.certificate.read_bytes() == pem  # made once
    names = x509.load_pem_x509_certificate(pem).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert "127.0.0.1" in {str(ip) for ip in names.value.get_values_for_type(x509.IPAddress)}
    assert "method = TLSv1.2+" in tls_config(first)


def test_an_operators_certificate_is_used_and_checked_by_key(tmp_path: Path) -> None:
    cert, key = tmp_path / "box.crt", tmp_path / "box.key"
    config = parse({"sip": {"tls_certificate": str(cert), "tls_private_key": str(key)}})
    with pytest.raises(SipError, match=r"sip\.tls_certificate"):
        tls_files(config)
    cert.write_text("x")
    key.write_text("y")
    assert tls_files(config).certificate == cert


def test_the_tls_listener_passes_kamailios_own_check(tmp_path: Path) -> None:
    config = parse({"paths": {"data_dir": str(tmp_path)}, "sip": {"transports": ["udp", "tcp", "tls"]}})
    tls = TlsInputs(5071, tls_files(config), tmp_path / "tls.cfg")
    tls.config_path.write_text(tls_config(tls.files))
    keys = EdgeKeys(caller="c" * 64, route="d" * 64)
    inputs = RenderInputs(5070, tmp_path / "rpc.sock", tmp_path / "l.db", True, find_module_path(None), None, keys, tls)
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(render(config, inputs))
    assert "listen=tls:127.0.0.1:5071" in cfg.read_text()
    check = subprocess.run(["kamailio", "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr[-2000:]


@pytest.fixture(scope="module")
def tls_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LifelineProcess]:
    workdir = tmp_path_factory.mktemp("tls")
    port = free_port("127.0.0.1")
    daemon = LifelineProcess(
        workdir / "lifeline",
        {"sip": {"listen": "127.0.0.1", "children": 2, "transports": ["udp", "tls"], "tls_port": port}},
    )
    csv = workdir / "phones.csv"
    csv.write_text("number,password,name\n" + "".join(f"{n},{p},Ext {n}\n" for n, p in PASSWORDS.items()))
    daemon.cli("extensions", "import", str(csv))
    daemon.start()
    daemon.set_mode("survival")
    yield daemon
    daemon.stop()


def tls_port(daemon: LifelineProcess) -> int:
    return int(daemon.status()["sip"]["tls_port"])


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls_is_1_2_or_newer_with_lifelines_own_certificate(tls_daemon: LifelineProcess) -> None:
    served = (tls_daemon.workdir / "data" / OWN_DIR / OWN_CERT).read_text()
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # the phone is provisioned with it
    with (
        socket.create_connection(("127.0.0.1", tls_port(tls_daemon)), 5) as raw,
        context.wrap_socket(raw) as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        der = tls.getpeercert(binary_form=True)
        assert der is not None and ssl.DER_cert_to_PEM_cert(der).strip() == served.strip()
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname, old.verify_mode = False, ssl.CERT_NONE
    old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", tls_port(tls_daemon)), 5) as raw, pytest.raises(ssl.SSLError) as err:
        old.wrap_socket(raw)
    assert "PROTOCOL_VERSION" in str(err.value)  # Lifeline refused TLS 1.1 (this client speaks it)


def test_the_daemon_made_its_certificate_without_keeping_cryptography_loaded(tls_daemon: LifelineProcess) -> None:
    # Once loaded, cryptography's bindings stay for the process's life (~10 MiB resident, bench/api).
    assert (tls_daemon.workdir / "data" / OWN_DIR / OWN_CERT).exists()
    maps = Path(f"/proc/{tls_daemon.status()['pid']}/maps").read_text()
    assert "/cryptography/" not in maps


def tls_phone(ep: SipEndpoint, daemon: LifelineProcess, user: str) -> Phone:
    """A pjsua2 phone whose SIP goes over TLS to Lifeline (its own TLS transport on loopback)."""
    tcfg = pj.TransportConfig()
    tcfg.port = 0
    tcfg.boundAddress = "127.0.0.1"
    tcfg.tlsConfig.method = pj.PJSIP_TLSV1_2_METHOD
    tcfg.tlsConfig.verifyServer = False  # Lifeline's own certificate: a phone is provisioned to trust it
    tid = int(pj.Endpoint.instance().transportCreate(pj.PJSIP_TRANSPORT_TLS, tcfg))
    uri = f"sip:127.0.0.1:{tls_port(daemon)};transport=tls"
    acfg = pj.AccountConfig()
    acfg.idUri = f"sip:{user}@{DOMAIN}"
    acfg.regConfig.registrarUri = uri
    acfg.regConfig.registerOnAdd = False
    acfg.regConfig.retryIntervalSec = 0
    acfg.sipConfig.proxies.append(uri + ";lr")
    acfg.sipConfig.transportId = tid
    acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", user, 0, PASSWORDS[user]))
    acfg.natConfig.sipOutboundUse = 0
    acfg.natConfig.contactRewriteUse = 0
    acfg.natConfig.viaRewriteUse = 0
    acfg.natConfig.sdpNatRewriteUse = 0
    acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    phone = Phone(ep, user, DOMAIN, tid)
    ep.ua.add_account(phone, acfg)
    ep.phones.append(phone)
    return phone


def test_a_phone_registers_and_calls_over_tls(sip_endpoint: SipEndpoint, tls_daemon: LifelineProcess) -> None:
    ep = sip_endpoint
    alice = tls_phone(ep, tls_daemon, "1001")
    try:
        assert alice.register() == 200
        udp = f"sip:127.0.0.1:{tls_daemon.sip_port}"
        bob = ep.phone("1002", PASSWORDS["1002"], domain=DOMAIN, registrar=udp, proxy=udp + ";lr")
        assert bob.register() == 200
        call = alice.call("1002")
        bob.ringing_call().answer_with(200)
        ep.wait_for(lambda: call.state == "CONFIRMED", 10, "the TLS phone's call to be answered")
        call.hang_up()
        ep.wait_for(lambda: call.state == "DISCONNECTED", 10, "the call to end")
        binding = KamailioRpc(tls_daemon.workdir / "run" / "kamailio-rpc.sock").call_blocking(
            "ul.lookup", "location", "1001"
        )
        assert "tls:127.0.0.1" in json.dumps(binding)  # the binding is on the TLS socket
    finally:
        alice.shutdown()  # its TLS listener goes with the library (closing it under a live connection asserts)
