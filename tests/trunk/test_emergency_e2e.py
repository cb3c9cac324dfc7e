"""Emergency calls end to end: limited service, notification, the ring, the call back, the daily cap spent.

Real daemon and Kamailio, the trunk agent process, pjsua2 phones and the pty modem simulator (as in
test_trunk_e2e.py). The daily cap is spent from the start (daily_minutes = 0): nothing here may
depend on it. Alice (1001) is the caller, Bob (1002) the front desk; both are the trunk's ring group.
The reception's phone (1003) is emergency.ring: it is rung (and, when not registered, refuses: 480).
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pjsua2 as pj
import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gateway.lab.daemon import LifelineProcess
from gateway.lab.phones import Phone, PhoneCall, SipEndpoint
from gateway.trunk import tones
from gateway.trunk.alerting import ALERT_HZ, ALERT_S
from gateway.trunk.sim import Network
from gateway.trunk.sim.thread import SimThread
from tests.served import served_in_thread
from tests.trunk.lab import DOMAIN, PASSWORDS, hang_up_trunk_call, leave_phones, phone, start_trunked, tone_sim

ADMIN = "+4915199990000"
SIM_NUMBER = "+4915100000009"
PSAP = "+4989112112"
CALLBACK_ALONE_S = 3
RECEPTION = ("1003", "reception-trunk-1003")
RING_S = 3


class AlertSink:
    """The alert webhook's receiving end on 127.0.0.1: keeps each alert whose signature holds."""

    def __init__(self) -> None:
        self.secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        self.alerts: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self.port = 0
        self.app = web.Application()
        self.app.router.add_post("/alerts", self._handle)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            Webhook(self.secret).verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.bad_signatures += 1
            return web.Response(status=401)
        self.alerts.append(json.loads(body))
        return web.Response(status=204)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [a for a in list(self.alerts) if a["type"] == kind]


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimThread]:
    with tone_sim(tmp_path_factory, 16, max_rings=400) as thread:
        yield thread


@pytest.fixture(scope="module")
def sink() -> Iterator[AlertSink]:
    receiver = AlertSink()
    with served_in_thread(receiver.app, lambda runner: web.TCPSite(runner, "127.0.0.1", 0), access_log=None) as runner:
        receiver.port = int(runner.addresses[0][1])
        yield receiver


@pytest.fixture(scope="module")
def trunked(tmp_path_factory: pytest.TempPathFactory, sim: SimThread, sink: AlertSink) -> Iterator[LifelineProcess]:
    work = tmp_path_factory.mktemp("emergency")
    secret = work / "webhook.secret"
    secret.write_text(sink.secret)
    settings = {
        "alerts": {"webhook_url": f"http://127.0.0.1:{sink.port}/alerts", "webhook_secret_file": str(secret)},
        "emergency": {
            "notify": ["1002"],
            "ring": [RECEPTION[0]],
            "ring_s": RING_S,
            "callback_window_s": 600,
            "callback_alone_s": CALLBACK_ALONE_S,
        },
    }
    extra = f'sms_admins = ["{ADMIN}"]\ndaily_minutes = 0\npoll_s = 1.0\ncommand_timeout_s = 1.0\n'
    daemon = start_trunked(work, sim.sim.by_id_dir, settings, extra, modem_extra=f'number = "{SIM_NUMBER}"\n')
    # Alice's desk, from the installer's CSV: what the front desk is told.
    located = work / "located.csv"
    header = "number,password,name,location_address,location_floor,location_room\n"
    alice = f'1001,{PASSWORDS["1001"]},Alice Example,"Hauptstr. 1, 10115 Berlin",2,204\n'
    located.write_text(header + alice + f"{RECEPTION[0]},{RECEPTION[1]},Reception,,,\n")
    daemon.cli("extensions", "import", str(located))
    yield daemon
    daemon.stop()


def modem_status(daemon: LifelineProcess) -> dict[str, Any]:
    return dict(((daemon.status().get("trunk") or {}).get("modems") or [{}])[0])


def wait_modem(daemon: LifelineProcess, ok: Any, what: str, within: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + within
    modem: dict[str, Any] = {}
    while time.monotonic() < deadline:
        modem = modem_status(daemon)
        if ok(modem):
            return modem
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}: {modem}")


@pytest.fixture(autouse=True)
def settle(request: pytest.FixtureRequest, sim: SimThread, trunked: LifelineProcess) -> Iterator[None]:
    """After each test: phones gone, the SIM back in, full service, the modem idle."""
    yield
    leave_phones(request)
    sim.call(sim.sim.hang_up_far_end)

    def restore() -> None:
        sim.sim.config.sim_pin = None
        if sim.sim.sim_state != "READY":
            sim.sim.remove_sim()
            sim.sim.insert_sim()
        sim.sim.set_network(Network.LTE_VOLTE)

    sim.call(restore)
    wait_modem(trunked, lambda m: m.get("state") == "ready" and m.get("call") == "idle", "full service again")


def dial(p: Phone, number: str) -> PhoneCall:
    call = PhoneCall(p)
    call.make_call(f"sip:{number}@{p.domain}")
    p.calls.append(call)
    return call


def emergency_call(ep: SipEndpoint, sim: SimThread, alice: Phone) -> PhoneCall:
    """Alice dials 112 and the PSAP answers."""
    before = sim.call(lambda: len(sim.sim.emergency_calls))
    call = dial(alice, "112")
    ep.wait_for(lambda: call.state == "CONFIRMED", 20, "the PSAP to answer the emergency call")
    assert sim.call(lambda: list(sim.sim.emergency_calls))[before:] == ["112"]
    return call


LIMITED = {  # how the modem gets there, and the problem the status then shows
    "sim-removed": (lambda s: s.remove_sim(), "no SIM card"),
    "sim-asks-for-pin": (lambda s: (setattr(s.config, "sim_pin", "4321"), s.remove_sim(), s.insert_sim()), "PIN"),
    "registration-denied": (lambda s: s.set_network(Network.DENIED), "denied registration"),
}


@pytest.mark.usefixtures("fresh_phones")
@pytest.mark.parametrize("case", list(LIMITED))
def test_112_goes_out_in_limited_service_and_ordinary_calls_do_not(
    sip_endpoint: SipEndpoint, trunked: LifelineProcess, sim: SimThread, case: str
) -> None:
    ep = sip_endpoint
    alice, bob = phone(ep, trunked, "1001"), phone(ep, trunked, "1002")
    enter, problem = LIMITED[case]
    sim.call(enter, sim.sim)
    modem = wait_modem(
        trunked, lambda m: m.get("emergency_only") is True and problem in (m.get("problem") or ""), "limited service"
    )
    assert modem["state"] in ("sim", "registering")
    ordinary = dial(alice, "0301234567")
    ep.wait_for(lambda: ordinary.state == "DISCONNECTED", 10, "the ordinary call to be refused")
    assert ordinary.record.last_code in (403, 503)
    call = emergency_call(ep, sim, alice)
    ep.wait_for(lambda: any("limited service" in text for _, _, text in bob.messages), 10, "the front desk's notice")
    hang_up_trunk_call(ep, sim, call)
    assert sim.call(lambda: sim.sim.far_end.dialled[-1]) == "112"


@pytest.mark.usefixtures("fresh_phones")
def test_the_front_desk_admins_and_webhook_hear_of_an_emergency_call_at_once(
    sip_endpoint: SipEndpoint, trunked: LifelineProcess, sim: SimThread, sink: AlertSink
) -> None:
    ep = sip_endpoint
    alice, bob = phone(ep, trunked, "1001"), phone(ep, trunked, "1002")
    capped = dial(alice, "0301234567")
    ep.wait_for(lambda: capped.state == "DISCONNECTED", 10, "the ordinary call to meet the spent cap")
    assert (capped.record.last_code, capped.record.last_reason) == (403, "Daily trunk minutes used up")

    dialled_at = time.monotonic()
    call = dial(alice, "112")
    ep.wait_for(lambda: bool(bob.messages), 5, "the front desk's SIP MESSAGE")
    arrived, sender, text = bob.messages[-1]
    assert arrived - dialled_at < 5  # (timing goals are bench/emergency's)
    assert "sip:1009@" in sender  # from the trunk agent's account, through Kamailio
    assert "EMERGENCY CALL to 112" in text and "From: 1001 Alice Example" in text
    assert "Location: Hauptstr. 1, 10115 Berlin, floor 2, room 204" in text
    assert f"Callback: {SIM_NUMBER}; a call to it in the next 10 min rings 1001" in text
    assert "the PSAP sees the cell's location only" in text
    ep.wait_for(lambda: call.state == "CONFIRMED", 20, "the PSAP to answer")

    def sms() -> list[str]:
        return [t for to, t in sim.call(lambda: list(sim.sim.sms_sent)) if to == ADMIN and "EMERGENCY 112" in t]

    ep.wait_for(lambda: bool(sms()) and bool(sink.of_type("emergency.call")), 20, "the SMS and the webhook")
    assert "1001 Alice Example, Hauptstr. 1" in sms()[-1] and "room 204" in sms()[-1]
    data = sink.of_type("emergency.call")[-1]["data"]
    assert (data["extension"], data["name"], data["number"]) == ("1001", "Alice Example", "112")
    assert data["location"] == {"address": "Hauptstr. 1, 10115 Berlin", "floor": "2", "room": "204"}
    assert data["callback_number"] == SIM_NUMBER and data["callback_rings"] == "1001"
    assert data["service"] == "full" and data["notified"]["1002"] == "sent"
    assert data["notified"]["ring:1003"].startswith("480")  # the reception's phone is not registered here
    assert sink.bad_signatures == 0
    hang_up_trunk_call(ep, sim, call)
    events = [e["message"] for e in trunked.status()["events"]]
    assert any(e.startswith("EMERGENCY 112 from 1001") for e in events), events


@pytest.mark.usefixtures("fresh_phones")
def test_a_call_back_rings_the_emergency_caller_first_then_the_group(
    sip_endpoint: SipEndpoint, trunked: LifelineProcess, sim: SimThread
) -> None:
    ep = sip_endpoint
    alice, bob = phone(ep, trunked, "1001"), phone(ep, trunked, "1002")
    hang_up_trunk_call(ep, sim, emergency_call(ep, sim, alice))

    # The PSAP calls back: Alice's phone rings, not the ring group (Bob), cap spent or not.
    sim.call(sim.sim.incoming_call, PSAP)
    back = alice.ringing_call(15)
    assert PSAP in back.remote_uri and not bob.incoming
    back.answer_with(200)
    ep.wait_for(lambda: sim.call(lambda: sim.sim.call is not None and sim.sim.call.stat == 0), 10, "ATA")
    assert not bob.incoming  # nobody else was disturbed
    hang_up_trunk_call(ep, sim, back)

    # Alice does not answer the next one: after callback_alone_s the group rings too, and Bob takes it.
    alice.incoming.clear()
    called_at = time.monotonic()  # before the agent's timer starts: the time measured is never short
    sim.call(sim.sim.incoming_call, PSAP)
    alice.ringing_call(15)
    to_bob = bob.ringing_call(CALLBACK_ALONE_S + 15)
    assert time.monotonic() - called_at >= CALLBACK_ALONE_S - 1
    to_bob.answer_with(200)
    ep.wait_for(lambda: sim.call(lambda: sim.sim.call is not None and sim.sim.call.stat == 0), 10, "Bob's ATA")
    hang_up_trunk_call(ep, sim, to_bob)


def reception(ep: SipEndpoint, lifeline: LifelineProcess) -> Phone:
    uri = f"sip:127.0.0.1:{lifeline.sip_port}"
    desk = ep.phone(RECEPTION[0], RECEPTION[1], domain=DOMAIN, registrar=uri, proxy=uri + ";lr")
    assert desk.register() == 200
    return desk


def ring_notified(sink: AlertSink, before: int) -> str:
    return str(sink.of_type("emergency.call")[before]["data"]["notified"]["ring:1003"])


def reception_rung(
    ep: SipEndpoint, trunked: LifelineProcess, sim: SimThread, sink: AlertSink
) -> tuple[PhoneCall, PhoneCall, tuple[int, int]]:
    """Alice dials 112 and the registered reception rings: her call, its ring, the alerts and 112s before."""
    alice, desk = phone(ep, trunked, "1001"), reception(ep, trunked)
    before = (len(sink.of_type("emergency.call")), sim.call(lambda: len(sim.sim.emergency_calls)))
    call = dial(alice, "112")
    return call, desk.ringing_call(10), before


def reception_rang_and_112_went_out(
    ep: SipEndpoint, sim: SimThread, sink: AlertSink, call: PhoneCall, before: tuple[int, int]
) -> None:
    """The modem dialled 112 and the webhook tells of the reception's ring; then the call ends."""
    assert sim.call(lambda: list(sim.sim.emergency_calls))[before[1] :] == ["112"]
    ep.wait_for(lambda: len(sink.of_type("emergency.call")) > before[0], 20, "the webhook")
    assert ring_notified(sink, before[0]) == "ringing"
    hang_up_trunk_call(ep, sim, call)


@pytest.mark.usefixtures("fresh_phones")
def test_the_reception_rings_with_the_caller_shown_and_hears_the_alert_when_it_answers(
    sip_endpoint: SipEndpoint, trunked: LifelineProcess, sim: SimThread, sink: AlertSink, tmp_path: Path
) -> None:
    ep = sip_endpoint
    call, rung, before = reception_rung(ep, trunked, sim, sink)
    # The display says what happened and where; the history calls Alice back.
    assert rung.remote_uri.startswith('"EMERGENCY 112: 1001 Alice Example, Floor 2 Room 204" <sip:1001@')
    rung.answer_with(200)
    ep.wait_for(lambda: rung.media_status == pj.PJSUA_CALL_MEDIA_ACTIVE, 5, "the answered ring's audio")
    answered = time.monotonic()
    wav = tmp_path / "alert.wav"
    rung.record_to(wav)
    ep.wait_for(lambda: rung.state == "DISCONNECTED", ALERT_S + 5, "Lifeline to end the alert")
    assert ALERT_S - 1 <= time.monotonic() - answered <= ALERT_S + 3
    rung.stop_recording()  # the WAV header is written as the recorder goes
    ep.pump(50)
    heard = tones.tone_sequence(ep.recording(wav), (*ALERT_HZ, 440.0, 1000.0))
    assert set(heard) == set(ALERT_HZ) and len(heard) >= 8, heard  # hi-lo, 4 a second; nothing else
    # The emergency call went out regardless, and the notice says the reception rang.
    ep.wait_for(lambda: call.state == "CONFIRMED", 20, "the PSAP to answer")
    reception_rang_and_112_went_out(ep, sim, sink, call, before)


@pytest.mark.usefixtures("fresh_phones")
def test_an_unanswered_ring_is_cancelled_after_ring_s_and_the_emergency_call_goes_on(
    sip_endpoint: SipEndpoint, trunked: LifelineProcess, sim: SimThread, sink: AlertSink
) -> None:
    ep = sip_endpoint
    dialled = time.monotonic()  # before the ring starts: a lower bound measured from here is never short
    call, rung, before = reception_rung(ep, trunked, sim, sink)
    rang = time.monotonic()  # after the phone rang: an upper bound measured from here is never long
    ep.wait_for(lambda: rung.state == "DISCONNECTED", RING_S + 5, "the ring to be cancelled")
    ended = time.monotonic()
    assert ended - dialled >= RING_S - 1 and ended - rang <= RING_S + 2
    assert rung.record.last_code == 487  # CANCEL: Request Terminated
    assert call.state == "CONFIRMED"  # the PSAP answered meanwhile, and the call goes on
    reception_rang_and_112_went_out(ep, sim, sink, call, before)
