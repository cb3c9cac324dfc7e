"""Trunk calls leave records too: out through the modem, refused by the agent's policy, emergency, in from the world.

Real daemon, its Kamailio, the trunk agent process it supervises, pjsua2 phones, and the pty modem
simulator; the records go to the lab webhook sink after recovery.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.cdr.clock import kernel_clock_synced
from gateway.cdr.labsink import LabWebhookReceiver, ThreadedReceiver
from gateway.lab.daemon import LifelineProcess
from gateway.lab.phones import PhoneCall, SipEndpoint
from gateway.trunk import tones
from gateway.trunk.sim import FarEnd
from gateway.trunk.sim.modem import ICCID
from gateway.trunk.sim.thread import SimThread
from tests.cdr.helpers import new_secret, wait_until
from tests.trunk.lab import CALLER, phone, quectel_sim, start_trunked

pytestmark = pytest.mark.usefixtures("fresh_phones")


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimThread]:
    far = FarEnd(source=tones.Tone((1000.0,)), answer_after_s=1.0)
    with quectel_sim(tmp_path / "by-id", 5, far, max_rings=400) as thread:
        yield thread


@pytest.fixture
def sink() -> Iterator[LabWebhookReceiver]:
    with ThreadedReceiver(LabWebhookReceiver(new_secret())) as receiver:
        yield receiver


@pytest.fixture
def trunked(tmp_path: Path, sim: SimThread, sink: LabWebhookReceiver) -> Iterator[LifelineProcess]:
    cdr = {
        "cdr": {"interval_s": 0.5, "backoff_base_s": 0.2, "backoff_max_s": 1.0},
        "cdr.webhook": {"url": sink.url, "secret": sink.secret, "timeout_s": 2.0},
        # The inbound call after the emergency call must ring the whole group here, not the caller first.
        "emergency": {"callback_window_s": 0},
    }
    daemon = start_trunked(tmp_path, sim.sim.by_id_dir, cdr)
    yield daemon
    daemon.stop()


def placed(ep: SipEndpoint, call: PhoneCall) -> str:
    ep.pump(20)
    return call.call_id_string


def test_trunk_calls_out_refused_emergency_and_in_are_each_recorded_once(
    sip_endpoint: SipEndpoint, trunked: LifelineProcess, sim: SimThread, sink: LabWebhookReceiver
) -> None:
    ep = sip_endpoint
    alice, bob = phone(ep, trunked, "1001"), phone(ep, trunked, "1002")
    out = alice.call("0301234567")
    out_id = placed(ep, out)
    ep.wait_for(lambda: out.state == "CONFIRMED", 20, "the far end to answer the trunk call")
    out.hang_up()
    ep.wait_for(lambda: sim.call(lambda: sim.sim.call is None), 10, "the modem call to end")

    abroad = alice.call("00442079460018")
    abroad_id = placed(ep, abroad)
    ep.wait_for(lambda: abroad.state == "DISCONNECTED", 10, "the international call to be refused")
    assert abroad.record.last_code == 403

    emergency = bob.call("112")
    emergency_id = placed(ep, emergency)
    ep.wait_for(lambda: emergency.state == "CONFIRMED", 20, "the emergency call")
    emergency.hang_up()
    ep.wait_for(lambda: sim.call(lambda: sim.sim.call is None), 10, "the emergency call to end")

    # A phone that sends the agent's header itself gets an ordinary record.
    forged = alice.call("1002", headers=[("X-Lifeline-Trunk", "call=forged&modem=lte0&number=%2B1900")])
    spoof_id = placed(ep, forged)
    bob.ringing_call(15).answer_with(200)
    ep.wait_for(lambda: forged.state == "CONFIRMED", 10, "bob to answer alice's internal call")
    forged.hang_up()
    ep.wait_for(lambda: forged.state == "DISCONNECTED", 10, "the internal call to end")

    sim.call(sim.sim.incoming_call, CALLER)
    a, b = alice.ringing_call(15), bob.ringing_call(15)
    incoming_id = b.call_id_string
    b.answer_with(200)
    ep.wait_for(lambda: b.state == "CONFIRMED", 10, "bob's answer")
    b.hang_up()
    ep.wait_for(lambda: sim.call(lambda: sim.sim.call is None), 10, "the inbound modem call to end")
    ep.wait_for(lambda: a.state == "DISCONNECTED", 10, "alice to stop ringing")

    wait_until(lambda: trunked.status()["cdr"]["records"]["final"] >= 5, 15, "5 final records", ep)
    trunked.set_mode("normal")
    wait_until(lambda: trunked.status()["cdr"]["sinks"][0]["pending"] == 0, 20, "the records to be delivered", ep)
    wait_until(lambda: trunked.status()["cdr"]["records"]["open"] == 0, 10, "no record left open", ep)

    by_call: dict[str, list[dict[str, Any]]] = {}
    for record in sink.records.values():
        by_call.setdefault(record["call_id"], []).append(record)
    assert all(len(v) == 1 for v in by_call.values()), by_call
    assert {out_id, abroad_id, emergency_id, incoming_id} <= set(by_call)
    shape = {cid: (r[0]["direction"], r[0]["disposition"], r[0]["to"]["number"]) for cid, r in by_call.items()}
    assert shape[out_id] == ("outbound", "answered", "0301234567")
    assert shape[abroad_id] == ("outbound", "refused", "00442079460018")
    assert shape[emergency_id] == ("emergency", "answered", "112")
    inbound = by_call[incoming_id][0]
    assert (inbound["direction"], inbound["disposition"]) == ("inbound", "answered")
    assert inbound["from"]["number"] == CALLER and inbound["to"]["extension"] == "1002"
    assert by_call[out_id][0]["billable_s"] >= 0 and by_call[out_id][0]["answer"] is not None
    # The agent rang both phones with an INVITE each: alice's unanswered leg folds into the call's
    # one record, which says which modem, SIM and network carried it.
    assert [r["call_id"] for r in sink.records.values() if r["from"]["number"] == CALLER] == [incoming_id]
    modem = {
        "modem": "lte0",
        "family": "quectel",
        "imei": sim.call(lambda: sim.sim.config.serial),
        "iccid": ICCID,
        "operator": "Lab Mobile",
    }
    assert inbound["trunk"] == {**modem, "call": inbound["trunk"]["call"], "access": "LTE", "number": CALLER}
    assert by_call[out_id][0]["trunk"] == {
        **modem,
        "call": by_call[out_id][0]["trunk"]["call"],
        "access": "LTE",
        "number": "+49301234567",
    }
    assert by_call[emergency_id][0]["trunk"]["emergency"] == "1"
    assert by_call[abroad_id][0]["trunk"] is None  # refused before any modem was involved
    # A phone cannot dress its own call up as a trunk call.
    assert [r["trunk"] for r in by_call[spoof_id]] == [None]
    # NTP may be gone with the WAN: the mobile network's time (NITZ) is the records' clock then.
    clock = trunked.status()["cdr"]["clock"]["source"]
    assert clock == ("ntp" if kernel_clock_synced() else "network")
