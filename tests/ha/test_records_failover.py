"""A call answered through box A and hung up through box B after A died: exactly one record at the sink.

Real daemons in namespaces (gateway.lab.pair_lab), pjsua2 phones, and the reference webhook receiver on
the office LAN: B writes the record from the start A's Kamailio copied to it, whether or not A returns;
when A returns it writes the same record (same id) and the sink answers `duplicate`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.cdr.labsink import LabWebhookReceiver, ThreadedReceiver
from gateway.lab.pair_lab import PHONES, PairLab
from gateway.lab.phones import SipEndpoint
from gateway.lab.waits import wait_until
from tests.cdr.helpers import new_secret
from tests.ha.test_call_failover import call_through_a_then_fail_over, records_of, running_pair

pytestmark = pytest.mark.usefixtures("fresh_phones")

SINK_PORT = 8097  # on the LAN bridge of this test's own namespaces


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short work directory: Kamailio's RPC socket path must fit a unix socket's ~100 bytes."""
    path = Path(tempfile.mkdtemp(prefix=f"llr{os.getpid() % 1000}-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def cdr_settings(secret: str) -> dict[str, object]:
    """Quick sweeps and deliveries, to the webhook receiver on the LAN."""
    webhook = {"url": f"http://{PHONES}:{SINK_PORT}/cdr", "secret": secret, "timeout_s": 2.0}
    return {"ring_timeout_s": 5, "interval_s": 0.5, "backoff_base_s": 0.2, "backoff_max_s": 1.0, "webhook": webhook}


@contextlib.contextmanager
def pair_and_sink(ep: SipEndpoint, extensions_csv: Path, workdir: Path) -> Iterator[tuple[PairLab, LabWebhookReceiver]]:
    """Both boxes up (A active), and the sink listening on the LAN (its thread made there)."""
    secret = new_secret()
    with (
        running_pair(workdir, extensions_csv, ep, one_key=True, cdr=cdr_settings(secret)) as lab,
        ThreadedReceiver(LabWebhookReceiver(secret, host=PHONES, port=SINK_PORT)) as sink,  # inside the LAN now
    ):
        yield lab, sink


def at_sink(sink: LabWebhookReceiver, call_id: str) -> list[dict[str, Any]]:
    return [r for r in list(sink.records.values()) if r["call_id"] == call_id]


def hang_up_through_b(ep: SipEndpoint, lab: PairLab, sink: LabWebhookReceiver, what: str) -> tuple[str, float, float]:
    """Alice calls bob through A, A dies (and stays dead), alice hangs up through B; B delivers to sink (what)."""
    call, incoming = call_through_a_then_fail_over(ep, lab)
    before = time.time()
    call.hang_up()
    ep.wait_for(lambda: incoming.state == "DISCONNECTED", 10, "bob to get the BYE through B")
    after = time.time()
    lab.b.set_mode("normal")  # records leave in NORMAL only
    call_id = call.call_id_string
    wait_until(lambda: bool(at_sink(sink, call_id)), what, 20, 0.2)
    return call_id, before, after


def check_record(record: dict[str, Any], before: float, after: float) -> None:
    """The call as it was: alice's extension to bob's, answered, ended when alice hung up."""
    assert record["from"] == {"number": "1001", "extension": "1001"}
    assert record["to"] == {"number": "1002", "extension": "1002"}
    assert (record["direction"], record["disposition"], record["sip_code"]) == ("internal", "answered", 200)
    assert record["mode"] == "survival" and record["hangup_cause"].startswith("caller hung up")
    assert record["start"] < record["answer"] < record["end"]
    end = datetime.fromisoformat(record["end"].replace("Z", "+00:00")).timestamp()
    assert before - 0.5 <= end <= after + 0.5


def test_a_never_returns_and_the_call_has_one_record_at_the_sink_written_by_b(
    sip_endpoint: SipEndpoint, extensions_csv: Path, workdir: Path
) -> None:
    with pair_and_sink(sip_endpoint, extensions_csv, workdir) as (lab, sink):
        call_id, before, after = hang_up_through_b(sip_endpoint, lab, sink, "the call's record at the sink")
        wait_until(lambda: lab.b.status()["cdr"]["sinks"][0]["delivered"] == 1, "B to settle it", 10, 0.2)
        (record,) = at_sink(sink, call_id)
        check_record(record, before, after)
        (own,) = records_of(lab.b, call_id)
        assert own["id"] == record["id"] and own["state"] == "final"
        assert lab.role(lab.b) == "active" and sink.receipts == 1


def test_a_returns_and_its_record_of_the_call_is_the_same_one_a_duplicate_at_the_sink(
    sip_endpoint: SipEndpoint, extensions_csv: Path, workdir: Path
) -> None:
    with pair_and_sink(sip_endpoint, extensions_csv, workdir) as (lab, sink):
        call_id, before, after = hang_up_through_b(sip_endpoint, lab, sink, "B's record at the sink")
        # A comes back (standby), closes its own record with the end B saw and delivers it too.
        lab.start(lab.a)
        lab.a.set_mode("normal")
        wait_until(lambda: [r["state"] for r in records_of(lab.a, call_id)] == ["final"], "A's record", 20, 0.2)
        wait_until(lambda: lab.a.status()["cdr"]["sinks"][0]["delivered"] == 1, "A to deliver its record", 20, 0.2)
        (record,) = at_sink(sink, call_id)
        check_record(record, before, after)
        (a_record,), (b_record,) = records_of(lab.a, call_id), records_of(lab.b, call_id)
        assert a_record["id"] == b_record["id"] == record["id"]
        assert sink.receipts == 2 and len(sink.records) == 1  # the second came as a duplicate
