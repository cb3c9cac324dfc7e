"""Shared pieces of the CDR tests: a daemon with a CDR webhook sink, phones through it, waiting helpers."""

from __future__ import annotations

import base64
import secrets
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.lab.cloud import LabCloud
from gateway.lab.daemon import LifelineProcess
from gateway.lab.phones import Phone, PhoneCall, SipEndpoint
from tests.conftest import CLOUD_HOST, PASSWORDS, REALM


def new_secret() -> str:
    """A Standard Webhooks secret."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def cdr_daemon(
    workdir: Path, cloud: LabCloud, sink_url: str, secret: str, extensions_csv: Path, **cdr: Any
) -> LifelineProcess:
    """A daemon (not started) relaying to the lab cloud, with the CDR webhook configured for fast delivery."""
    settings: dict[str, Any] = {"interval_s": 0.5, "backoff_base_s": 0.2, "backoff_max_s": 1.0, "batch_size": 50}
    settings.update(cdr)
    daemon = LifelineProcess(
        workdir,
        {
            "cloud": {"sbc": cloud.uri, "realm": REALM},
            "sip": {"listen": "127.0.0.1", "children": 2},
            "cdr": settings,
            "cdr.webhook": {"url": sink_url, "secret": secret, "timeout_s": 2.0},
        },
    )
    daemon.cli("extensions", "import", str(extensions_csv))
    return daemon


def phone(ep: SipEndpoint, lifeline: LifelineProcess, cloud: LabCloud, user: str) -> Phone:
    """A phone with Lifeline as outbound proxy (the default model)."""
    return ep.phone(
        user,
        PASSWORDS[user],
        domain=CLOUD_HOST,
        registrar=cloud.uri,
        proxy=f"sip:127.0.0.1:{lifeline.sip_port};lr",
    )


def call_id(ep: SipEndpoint, call: PhoneCall) -> str:
    """The SIP Call-ID of a call just placed."""
    ep.pump(20)
    return str(call.getInfo().callIdString)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, ep: SipEndpoint | None = None) -> None:
    """Poll (pumping the phones, if any) until predicate() holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if ep is not None:
            ep.pump(50)
        else:
            time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def integrity_ok(db_path: Path) -> bool:
    """PRAGMA integrity_check of the store."""
    with sqlite3.connect(db_path) as db:
        return bool(db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")
