"""Survival calls through real Kamailio and pjsua2 phones leave exactly one record each at the sink."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gateway.cdr.labsink import LabWebhookReceiver, ThreadedReceiver
from gateway.lab.cloud import LabCloud
from gateway.lab.daemon import LifelineProcess
from gateway.lab.phones import Phone, SipEndpoint
from tests.cdr.helpers import call_id, cdr_daemon, integrity_ok, new_secret, phone, wait_until

pytestmark = pytest.mark.usefixtures("fresh_phones")


@contextmanager
def cdr_lab(
    ep: SipEndpoint, cloud: LabCloud, tmp_path: Path, extensions_csv: Path, mode: str
) -> Iterator[tuple[LabWebhookReceiver, LifelineProcess, Phone, Phone]]:
    """A webhook sink; the CDR daemon delivering to it, started and held in mode; phones 1001 and 1002 through it."""
    secret = new_secret()
    with ThreadedReceiver(LabWebhookReceiver(secret)) as sink:
        daemon = cdr_daemon(tmp_path / "lifeline", cloud, sink.url, secret, extensions_csv)
        daemon.start()
        try:
            daemon.set_mode(mode)
            yield sink, daemon, phone(ep, daemon, cloud, "1001"), phone(ep, daemon, cloud, "1002")
        finally:
            daemon.stop()


def call_id_of(expected: dict[str, tuple[str, int]], disposition: str) -> str:
    return next(cid for cid, (d, _) in expected.items() if d == disposition)


def test_every_kind_of_survival_call_is_delivered_once(
    sip_endpoint: SipEndpoint, cloud: LabCloud, tmp_path: Path, extensions_csv: Path
) -> None:
    ep = sip_endpoint
    with cdr_lab(ep, cloud, tmp_path, extensions_csv, "survival") as (sink, daemon, alice, bob):
        assert alice.register() == 200
        assert bob.register() == 200
        expected: dict[str, tuple[str, int]] = {}

        answered = alice.call("1002")
        expected[call_id(ep, answered)] = ("answered", 200)
        ringing = bob.ringing_call()
        ringing.answer_with(200)
        ep.wait_for(lambda: answered.state == "CONFIRMED", what="the call to be answered")
        answered.hang_up()
        ep.wait_for(lambda: ringing.state == "DISCONNECTED", what="bob to see the hang-up")

        cancelled = alice.call("1002")
        expected[call_id(ep, cancelled)] = ("no_answer", 487)
        ep.wait_for(lambda: len(bob.incoming) == 2, what="bob's phone to ring again")
        cancelled.hang_up()
        ep.wait_for(lambda: cancelled.state == "DISCONNECTED", what="the cancel to complete")

        busy = alice.call("1002")
        expected[call_id(ep, busy)] = ("busy", 486)
        ep.wait_for(lambda: len(bob.incoming) == 3, what="bob's phone to ring a third time")
        bob.incoming[-1].answer_with(486)
        ep.wait_for(lambda: busy.state == "DISCONNECTED", what="alice to hear busy")
        assert busy.record.last_code == 486

        unknown = alice.call("nobody")  # not a number: never routed to the trunk
        expected[call_id(ep, unknown)] = ("failed", 404)
        ep.wait_for(lambda: unknown.state == "DISCONNECTED", what="the call to nobody to fail")
        assert unknown.record.last_code == 404

        # Nothing leaves during the outage; after recovery everything does, once.
        wait_until(lambda: daemon.status()["cdr"]["records"]["final"] == 4, 15, "4 final records", ep)
        assert sink.records == {}
        daemon.set_mode("normal")
        wait_until(lambda: len(sink.records) == 4, 20, "4 records at the sink", ep)
        wait_until(lambda: daemon.status()["cdr"]["sinks"][0]["delivered"] == 4, 10, "the deliveries to be settled", ep)
    by_call = {r["call_id"]: r for r in sink.records.values()}
    assert set(by_call) == set(expected)
    for cid, (disposition, code) in expected.items():
        record = by_call[cid]
        assert (record["disposition"], record["sip_code"]) == (disposition, code), record
        assert record["mode"] == "survival"
        assert record["from"] == {"number": "1001", "extension": "1001"}
    talk = by_call[call_id_of(expected, "answered")]
    assert talk["answer"] is not None and talk["end"] is not None
    assert talk["hangup_cause"] == "caller hung up"
    assert by_call[call_id_of(expected, "failed")]["direction"] == "outbound"
    assert by_call[call_id_of(expected, "busy")]["direction"] == "internal"
    assert sink.receipts == 4 and sink.bad_signatures == 0

    listed = json.loads(daemon.cli("cdr", "list", "--json").stdout)
    assert sorted(r["call_id"] for r in listed) == sorted(expected)
    assert all(r["delivery"] == {"webhook": "delivered"} for r in listed)
    assert integrity_ok(daemon.workdir / "data" / "lifeline.db")


def test_fallback_calls_are_recorded_and_cloud_calls_are_not(
    sip_endpoint: SipEndpoint, cloud: LabCloud, tmp_path: Path, extensions_csv: Path
) -> None:
    ep = sip_endpoint
    # Held in NORMAL by hand: the per-request fallback alone serves the call, not detection.
    with cdr_lab(ep, cloud, tmp_path, extensions_csv, "normal") as (sink, daemon, alice, bob):
        assert alice.register() == 200 and bob.register() == 200  # through the cloud
        relayed = alice.call("1002")
        relayed_id = call_id(ep, relayed)
        ep.wait_for(lambda: len(bob.incoming) == 1, what="bob's phone to ring through the cloud")
        bob.incoming[0].answer_with(200)
        ep.wait_for(lambda: relayed.state == "CONFIRMED", what="the cloud call to be answered")
        relayed.hang_up()
        ep.wait_for(lambda: bob.incoming[0].state == "DISCONNECTED", what="the cloud call to end")

        cloud.pause()
        try:
            fallback = alice.call("1002")
            fallback_id = call_id(ep, fallback)
            ep.wait_for(lambda: len(bob.incoming) == 2, 15, "bob's phone to ring via the fallback")
            bob.incoming[1].answer_with(200)
            ep.wait_for(lambda: fallback.state == "CONFIRMED", what="the fallback call to be answered")
            fallback.hang_up()
            ep.wait_for(lambda: bob.incoming[1].state == "DISCONNECTED", what="the fallback call to end")
            # The callee refuses the next one: a refusal is a record too.
            refused = alice.call("1002")
            refused_id = call_id(ep, refused)
            ep.wait_for(lambda: len(bob.incoming) == 3, 15, "bob's phone to ring a third time")
            bob.incoming[2].answer_with(403)
            ep.wait_for(lambda: refused.state == "DISCONNECTED", what="the refusal")
            wait_until(lambda: len(sink.records) == 2, 20, "2 records at the sink", ep)
        finally:
            cloud.resume()
        assert daemon.status()["mode"]["mode"] == "normal"
    by_call = {r["call_id"]: r for r in sink.records.values()}
    assert relayed_id not in by_call  # the cloud records what it carried itself
    assert set(by_call) == {fallback_id, refused_id}
    talk, refusal = by_call[fallback_id], by_call[refused_id]
    assert (talk["mode"], talk["disposition"], talk["sip_code"]) == ("fallback", "answered", 200)
    assert talk["answer"] is not None and talk["billable_s"] >= 0 and talk["hangup_cause"] == "caller hung up"
    assert (refusal["mode"], refusal["disposition"], refusal["sip_code"]) == ("fallback", "refused", 403)
    assert refusal["direction"] == "internal" and refusal["to"] == {"number": "1002", "extension": "1002"}
