"""Fixtures that start real parts: a Kamailio playing the cloud, the Lifeline daemon, pjsua2 phones."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.lab.cloud import LabCloud
from gateway.lab.daemon import LifelineProcess
from gateway.mirror.records import Extension
from gateway.sip.render import free_port

CLOUD_HOST = "127.0.0.2"
REALM = "asterisk"
PASSWORDS = {"1001": "alice-secret-1001", "1002": "bob-secret-1002", "1003": "carol-secret-1003"}


def lab_extensions() -> list[Extension]:
    """The extensions both the cloud and Lifeline know."""
    return [
        Extension.from_password(number=n, auth_user=n, realm=REALM, password=p, display_name=f"Ext {n}")
        for n, p in PASSWORDS.items()
    ]


@pytest.fixture(scope="session")
def sip_endpoint() -> Iterator[object]:
    """The process-wide pjsua2 endpoint (pjsua2 allows one per process)."""
    from gateway.lab.phones import SipEndpoint

    endpoint = SipEndpoint(int(os.environ.get("LIFELINE_PJSUA_LOG", "1")))
    yield endpoint
    endpoint.close()


@pytest.fixture
def fresh_phones(sip_endpoint: object) -> Iterator[None]:
    """Phones of one test leave with it (use with pytest.mark.usefixtures)."""
    yield
    from gateway.lab.phones import SipEndpoint

    assert isinstance(sip_endpoint, SipEndpoint)
    sip_endpoint.reset()


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[LabCloud]:
    """A real Kamailio registrar playing the cloud PBX on 127.0.0.2."""
    lab = LabCloud(tmp_path / "cloud", host=CLOUD_HOST, port=free_port(CLOUD_HOST), realm=REALM)
    lab.add_subscribers(lab_extensions())
    lab.start()
    yield lab
    lab.stop()


@pytest.fixture
def extensions_csv(tmp_path: Path) -> Path:
    """The installer's CSV with clear passwords (hashed on import)."""
    path = tmp_path / "extensions.csv"
    rows = ["number,password,name"] + [f"{n},{p},Ext {n}" for n, p in PASSWORDS.items()]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture
def lifeline(tmp_path: Path, cloud: LabCloud, extensions_csv: Path) -> Iterator[LifelineProcess]:
    """The real daemon with its Kamailio, relaying to the lab cloud, extensions imported."""
    daemon = LifelineProcess(
        tmp_path / "lifeline",
        {"cloud": {"sbc": cloud.uri, "realm": REALM}, "sip": {"listen": "127.0.0.1", "children": 2}},
    )
    daemon.cli("extensions", "import", str(extensions_csv))
    daemon.start()
    yield daemon
    daemon.stop()
