"""TLS for phones: the operator's certificate, or one Lifeline makes itself on the first start."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.config import Config
from gateway.errors import SipError
from gateway.fsmode import write_private

OWN_DIR = "tls"
OWN_CERT = "lifeline.crt"
OWN_KEY = "lifeline.key"
VALID_DAYS = 3650  # phones pin or trust this certificate: it must outlive the box's service life
# TLS 1.2 ciphers with forward secrecy and AEAD only (TLS 1.3 suites are modern by definition).
CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


@dataclass(frozen=True)
class TlsFiles:
    """The certificate chain and private key Kamailio serves on its TLS listener."""

    certificate: Path
    private_key: Path


def tls_files(config: Config) -> TlsFiles:
    """The configured pair (checked), or Lifeline's own certificate in the data dir, made if missing."""
    sip = config.sip
    if sip.tls_certificate is not None and sip.tls_private_key is not None:
        for key, path in (("sip.tls_certificate", sip.tls_certificate), ("sip.tls_private_key", sip.tls_private_key)):
            if not path.is_file():
                raise SipError(f"{key} = '{path}': no such file")
        return TlsFiles(sip.tls_certificate, sip.tls_private_key)
    directory = config.data_dir / OWN_DIR
    own = TlsFiles(directory / OWN_CERT, directory / OWN_KEY)
    if not (own.certificate.exists() and own.private_key.exists()):
        make_certificate(own, sip.listen)
    return own


def make_certificate(files: TlsFiles, listen: str) -> None:
    """A self-signed ECDSA P-256 certificate for this host's name and addresses (key readable by us only)."""
    host = socket.gethostname()
    names: list[x509.GeneralName] = [x509.DNSName(host)]
    addresses = {"127.0.0.1"} | ({listen} if listen not in ("0.0.0.0", "::") else set())
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in sorted(addresses)]
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Lifeline {host}")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_private(files.private_key, pem_key.decode())
    write_private(files.certificate, certificate.public_bytes(serialization.Encoding.PEM).decode())


def tls_config(files: TlsFiles) -> str:
    """The tls module's own config: TLS 1.2 and newer, modern ciphers, phones need no client certificate."""
    return (
        "[server:default]\n"
        "method = TLSv1.2+\n"
        f"cipher_list = {CIPHERS}\n"
        "verify_certificate = no\n"
        "require_certificate = no\n"
        f"certificate = {files.certificate}\n"
        f"private_key = {files.private_key}\n"
        "\n"
        "[client:default]\n"
        "method = TLSv1.2+\n"
        f"cipher_list = {CIPHERS}\n"
    )
