"""Shared pieces of the CDR tests: a daemon with a CDR webhook sink, phones through it, waiting helpers."""

from __future__ import annotations

import base64
import secrets
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uuid6

from gateway.lab.cloud import LabCloud
from gateway.lab.daemon import LifelineProcess
from gateway.lab.phones import Phone, PhoneCall, SipEndpoint
from gateway.store import Store
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
    return call.call_id_string


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


def add_record(store: Store, **fields: Any) -> int:
    """Put one final record (answered 1001 → 1002 unless told otherwise) in the store; returns its seq."""
    row: dict[str, Any] = {
        "id": str(uuid6.uuid7()),
        "call_id": f"{secrets.token_hex(6)}@lab",
        "from_tag": "t",
        "state": "final",
        "start_ts": 1_764_064_800.0,
        "answer_ts": 1_764_064_804.5,
        "end_ts": 1_764_064_865.2,
        "clock_source": "ntp",
        "from_number": "1001",
        "to_number": "1002",
        "from_ext": "1001",
        "to_ext": "1002",
        "direction": "internal",
        "disposition": "answered",
        "sip_code": 200,
        "hangup_cause": "caller hung up",
        "mode": "survival",
        "final_at": time.time(),
    }
    row.update(fields)
    with store.write() as conn:
        cursor = conn.execute(
            f"INSERT INTO cdrs ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})", list(row.values())
        )
        return int(cursor.lastrowid or 0)


def queue(store: Store, sink: str, seqs: list[int], state: str = "pending") -> None:
    """Outbox rows for these records."""
    with store.write() as conn:
        conn.executemany(
            "INSERT INTO cdr_outbox (sink, cdr_seq, state) VALUES (?, ?, ?)", [(sink, seq, state) for seq in seqs]
        )
