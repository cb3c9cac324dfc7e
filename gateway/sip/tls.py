"""TLS for phones (the operator's certificate, or one Lifeline makes itself) and the check of the cloud's."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gateway.config import Config
from gateway.errors import SipError
from gateway.fsmode import write_private
from gateway.sip.options import SipTarget

OWN_DIR = "tls"
OWN_CERT = "lifeline.crt"
OWN_KEY = "lifeline.key"
VALID_DAYS = 3650  # phones pin or trust this certificate: it must outlive the box's service life
MAKE_S = 120.0  # the child that makes the certificate: a Python start and one EC key, slow on a busy Pi
# TLS 1.2 ciphers with forward secrecy and AEAD only (TLS 1.3 suites are modern by definition).
CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
# The CAs the system trusts (Debian's ca-certificates): the cloud's certificate is checked against them
# unless cloud.ca_file names a private CA. Kamailio and the SIP probe both load this one file.
SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
VERIFY_DEPTH = 9  # intermediate CAs allowed between the SBC's certificate and a trusted one (tls's default)


@dataclass(frozen=True)
class TlsFiles:
    """The certificate chain and private key Kamailio serves on its TLS listener."""

    certificate: Path
    private_key: Path


@dataclass(frozen=True)
class CloudTls:
    """How Kamailio checks the cloud SBC's certificate when it connects to it over TLS."""

    verify: bool  # cloud.tls_verify
    ca_list: Path  # cloud.ca_file, or the system's bundle


def cloud_ca_list(config: Config) -> Path:
    """The CA bundle the cloud's certificate is checked against (not checked to exist here)."""
    return config.cloud.ca_file or SYSTEM_CA_BUNDLE


def cloud_tls(config: Config) -> CloudTls:
    """The cloud's TLS check; SipError naming cloud.ca_file when that file (or the system's bundle) is missing."""
    cloud = config.cloud
    if cloud.ca_file is not None and not cloud.ca_file.is_file():
        raise SipError(f"cloud.ca_file = '{cloud.ca_file}': no such file")
    target = SipTarget.from_uri(cloud.sbc) if cloud.sbc else None
    ca_list = cloud_ca_list(config)
    if target is not None and target.transport == "tls" and cloud.tls_verify and not ca_list.is_file():
        raise SipError(
            f"cloud.ca_file: not set, and no system CA bundle at {ca_list} to check the SBC's certificate"
            " (install ca-certificates, or name the cloud's CA)"
        )
    return CloudTls(cloud.tls_verify, ca_list)


def cloud_server_name(config: Config) -> str | None:
    """The name Kamailio sends as SNI to a cloud SBC over TLS: its host name (none for an IP address)."""
    target = SipTarget.from_uri(config.cloud.sbc) if config.cloud.sbc else None
    if target is None or target.transport != "tls":
        return None
    try:
        ipaddress.ip_address(target.host)
    except ValueError:
        return target.host
    return None  # SNI names hosts only (RFC 6066 section 3)


def tls_files(config: Config, also: Iterable[str] = ()) -> TlsFiles:
    """The configured pair (checked), or Lifeline's own certificate in the data dir, made if missing.

    also: more addresses the certificate names when it is made (the network API's, when not sip.listen).
    """
    sip = config.sip
    if sip.tls_certificate is not None and sip.tls_private_key is not None:
        for key, path in (("sip.tls_certificate", sip.tls_certificate), ("sip.tls_private_key", sip.tls_private_key)):
            if not path.is_file():
                raise SipError(f"{key} = '{path}': no such file")
        return TlsFiles(sip.tls_certificate, sip.tls_private_key)
    directory = config.data_dir / OWN_DIR
    own = TlsFiles(directory / OWN_CERT, directory / OWN_KEY)
    if not (own.certificate.exists() and own.private_key.exists()):
        make_certificate_apart(own, sip.listen, also)
    return own


def make_certificate_apart(files: TlsFiles, listen: str, also: Iterable[str] = ()) -> None:
    """make_certificate in a child process (blocks: call it off the event loop); SipError when it fails."""
    # A process of its own: cryptography, once imported, stays in the daemon for its whole life
    # (~10 MiB resident, bench/api) for a certificate made once in the box's life.
    cmd = [sys.executable, "-m", "gateway.sip.tls", str(files.certificate), str(files.private_key), listen, *also]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=MAKE_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SipError(f"cannot make the TLS certificate: {err}") from err
    if done.returncode != 0:
        raise SipError(f"cannot make the TLS certificate: {done.stderr.strip()[-500:] or done.returncode}")


def make_certificate(files: TlsFiles, listen: str, also: Iterable[str] = ()) -> None:
    """A self-signed ECDSA P-256 certificate for this host's name and addresses (key readable by us only)."""
    # Imported here: cryptography's bindings cost the daemon ~10 MiB resident, for a once-a-life certificate.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    host = socket.gethostname()
    names: list[x509.GeneralName] = [x509.DNSName(host)]
    addresses = {"127.0.0.1"} | {a for a in (listen, *also) if a not in ("0.0.0.0", "::")}
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


def tls_config(files: TlsFiles, cloud: CloudTls | None = None) -> str:
    """The tls module's own config: TLS 1.2 and newer, modern ciphers, phones need no client certificate.

    [client:default] is every connection Kamailio opens itself, i.e. the one to the cloud SBC: its
    certificate chain must lead to cloud.ca_file or the system's CAs (cloud None: the system's).
    Kamailio 5.6 checks the chain only, not that the certificate names the SBC's host.
    """
    cloud = cloud or CloudTls(verify=True, ca_list=SYSTEM_CA_BUNDLE)
    if cloud.verify:
        check = f"verify_certificate = yes\nrequire_certificate = yes\nverify_depth = {VERIFY_DEPTH}\n"
        check += f"ca_list = {cloud.ca_list}\n"
    else:
        check = "verify_certificate = no\nrequire_certificate = no\n"
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
        f"{check}"
    )


if __name__ == "__main__":  # make_certificate_apart's child: CERT KEY LISTEN [ALSO...]
    make_certificate(TlsFiles(Path(sys.argv[1]), Path(sys.argv[2])), sys.argv[3], sys.argv[4:])
