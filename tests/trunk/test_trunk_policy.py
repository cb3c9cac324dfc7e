"""The trunk's policy end to end: charged ranges refused, limits alert, emergency numbers routed, logs masked.

Real daemon, its Kamailio, the trunk agent process, pjsua2 phones and the pty modem simulator (as in
test_trunk_e2e.py); one simulator for the module, a daemon per test.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import phonenumbers
import pytest
from phonenumbers import shortnumberinfo

from gateway.lab.daemon import LifelineProcess
from gateway.lab.phones import PhoneCall, SipEndpoint
from gateway.trunk import tones
from gateway.trunk.sim import FarEnd
from gateway.trunk.sim.thread import SimThread
from tests.cdr.helpers import wait_until
from tests.trunk.lab import CALLER, PASSWORDS, phone, quectel_sim, start_trunked

pytestmark = pytest.mark.usefixtures("fresh_phones")

ADMIN = "+4915199990000"
# Every process logs everything: Kamailio's INFO lines (sip.debug 2) and the daemon's and agent's debug lines.
VERBOSE = {"sip": {"listen": "127.0.0.1", "children": 2, "debug": 2}, "log": {"level": "debug"}}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimThread]:
    far = FarEnd(source=tones.Tone((1000.0,)), answer_after_s=1.0)
    with quectel_sim(tmp_path_factory.mktemp("sim") / "by-id", 11, far, max_rings=400) as thread:
        yield thread


@pytest.fixture
def stopping() -> Iterator[list[LifelineProcess]]:
    """Daemons a test started, stopped after it whatever happened."""
    started: list[LifelineProcess] = []
    yield started
    for daemon in started:
        daemon.stop()


def dialled(sim: SimThread) -> list[str]:
    return list(sim.call(lambda: list(sim.sim.far_end.dialled)))


def answered_then_hung_up(ep: SipEndpoint, sim: SimThread, call: PhoneCall, what: str) -> None:
    ep.wait_for(lambda: call.state == "CONFIRMED", 20, what)
    call.hang_up()
    ep.wait_for(lambda: sim.call(lambda: sim.sim.call is None), 10, f"{what} to end")


def refused(ep: SipEndpoint, call: PhoneCall, what: str) -> tuple[int, str]:
    ep.wait_for(lambda: call.state == "DISCONNECTED", 10, what)
    return call.record.last_code, call.record.last_reason


def hidden_digits(number: str) -> str:
    """The part of a number no log may show: its national significant number less the last two digits."""
    return phonenumbers.national_significant_number(phonenumbers.parse(number, "DE"))[:-2]


def test_charged_ranges_limits_and_masked_logs(
    sip_endpoint: SipEndpoint, sim: SimThread, tmp_path: Path, stopping: list[LifelineProcess]
) -> None:
    extra = f'calls_per_minute = 2\nconcurrent_calls = 1\nsms_admins = ["{ADMIN}"]\n'
    daemon = start_trunked(tmp_path, sim.sim.by_id_dir, VERBOSE, extra)
    stopping.append(daemon)
    ep = sip_endpoint
    alice, bob = phone(ep, daemon, "1001"), phone(ep, daemon, "1002")

    answered_then_hung_up(ep, sim, alice.call("0301234567"), "a German fixed number")
    charged = {
        "09001234567": (403, "Premium rate numbers not allowed"),
        "01805123456": (403, "Shared cost numbers not allowed"),
        "070012345678": (403, "Personal number numbers not allowed"),
        "01212345678": (403, "Unknown numbers not allowed"),
        "00442079460018": (403, "International calls not allowed"),
        "+442079460018": (403, "International calls not allowed"),
    }
    for number, answer in charged.items():
        assert refused(ep, alice.call(number), f"{number[:-2]}.. to be refused") == answer, number
    answered_then_hung_up(ep, sim, alice.call("015112345678"), "a German mobile")
    # Two trunk calls in this minute: the third is refused, and administrators hear of it.
    assert refused(ep, alice.call("08001234567"), "the third call in a minute") == (403, "Too many trunk calls")
    answered_then_hung_up(ep, sim, alice.call("112"), "the emergency call, limits or not")
    sim.call(sim.sim.incoming_call, CALLER)
    incoming = alice.ringing_call(15)  # right after her emergency call: a call back rings her, not the group
    incoming.answer_with(200)
    ep.wait_for(lambda: incoming.state == "CONFIRMED", 10, "alice's answer")
    assert not bob.incoming
    incoming.hang_up()
    ep.wait_for(lambda: sim.call(lambda: sim.sim.call is None), 10, "the inbound call to end")

    assert dialled(sim)[-3:] == ["+49301234567", "+4915112345678", "112"]  # nothing refused reached the modem

    def sms_alert() -> list[str]:
        sent = sim.call(lambda: list(sim.sim.sms_sent))
        return [text for to, text in sent if to == ADMIN and "calls-per-minute" in text]

    wait_until(lambda: bool(sms_alert()), 20, "the limit alert by SMS", ep)
    assert "1001" in sms_alert()[0] and "0800" not in sms_alert()[0]
    events = [e["message"] for e in daemon.status()["events"]]
    assert any("trunk limit calls-per-minute: extension 1001" in e for e in events), events

    assert daemon.stop() == 0
    log = daemon.log_path.read_text()
    numbers = ["+49301234567", "+4915112345678", CALLER, ADMIN, *charged, "+498001234567"]
    leaks = {n: hidden_digits(n) for n in numbers if hidden_digits(n) in log}
    assert not leaks, leaks
    # The log did capture all three processes: the agent's, the daemon's and Kamailio's lines about these calls.
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    agent = [x for x in lines if x.get("event") == "trunk call out"]
    assert {x["number"] for x in agent} >= {"**********67", "************78", "*12"}
    assert any(x.get("event") == "trunk call refused" and x["rule"] == "number-type:premium_rate" for x in lines)
    kamailio = [x["line"] for x in lines if x.get("event") == "kamailio"]
    assert any("trunk call" in k and "to **67" in k for k in kamailio), kamailio[-20:]
    assert any("emergency call" in k and "to **12" in k for k in kamailio)


@pytest.mark.parametrize("country", ["DE", "FR", "GB", "US", "AU"])
def test_the_numbers_libphonenumber_calls_emergency_are_routed_and_recorded_as_such(
    sip_endpoint: SipEndpoint, sim: SimThread, tmp_path: Path, stopping: list[LifelineProcess], country: str
) -> None:
    candidates = ("".join(d) for n in (2, 3, 4) for d in itertools.product("0123456789", repeat=n))
    emergency = sorted(s for s in candidates if shortnumberinfo.is_emergency_number(s, country))
    ordinary = ["116117"] if country == "DE" else []  # the medical on-call line: free, not an emergency number
    # Every extension may call emergency numbers only, one trunk call a minute: neither applies to them.
    extra = 'default_reach = "emergency"\ncalls_per_minute = 1\n'
    if ordinary:
        extra += 'reach = { "1002" = "national" }\n'
    daemon = start_trunked(tmp_path, sim.sim.by_id_dir, {}, extra, country=country)
    stopping.append(daemon)
    # An extension numbered like an emergency number (not registered: 480 if it were routed to it) shadows nothing.
    csv = tmp_path / "with-shadow.csv"
    csv.write_text(
        "number,password\n" + "".join(f"{n},{p}\n" for n, p in {**PASSWORDS, emergency[0]: "shadow-pw-1"}.items())
    )
    daemon.cli("extensions", "import", str(csv))
    ep = sip_endpoint
    alice, bob = phone(ep, daemon, "1001"), phone(ep, daemon, "1002")
    for number in emergency:
        answered_then_hung_up(ep, sim, alice.call(number), f"emergency number {number}")
        assert dialled(sim)[-1] == number
    for number in ordinary:
        answered_then_hung_up(ep, sim, bob.call(number), number)
        assert dialled(sim)[-1] == number
    total = len(emergency) + len(ordinary)
    wait_until(lambda: daemon.status()["cdr"]["records"]["final"] >= total, 15, f"{total} final records", ep)
    records = json.loads(daemon.cli("cdr", "list", "--json").stdout)
    direction = {r["to_number"]: r["direction"] for r in records}
    assert direction == {**dict.fromkeys(emergency, "emergency"), **dict.fromkeys(ordinary, "outbound")}
    assert all(json.loads(r["trunk"]).get("emergency") == "1" for r in records if r["to_number"] in emergency)
