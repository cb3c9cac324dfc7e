"""Phones behind Lifeline keep calling each other when the cloud is gone (real Kamailio, real phones)."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pjsua2 as pj
import pytest

from gateway.lab.cloud import LabCloud
from gateway.lab.daemon import LifelineProcess
from gateway.lab.pair_lab import contacts
from gateway.lab.phone_proc import PhoneProcess
from gateway.lab.phones import Phone, PhoneCall, SipEndpoint, talk
from gateway.lab.sipclient import SipClient
from gateway.sip.render import free_port
from gateway.sip.rpc import KamailioRpc
from tests.conftest import (
    CLOUD_HOST,
    PASSWORDS,
    lifeline_proxy,
    phone_via_lifeline,
    registered_in_survival,
    registered_via_lifeline,
    wait_udp_bound,
)

pytestmark = pytest.mark.usefixtures("fresh_phones")

DATA = Path(__file__).resolve().parent.parent / "data"
SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"


def answer_and_confirm(ep: SipEndpoint, caller: PhoneCall, callee: Phone) -> PhoneCall:
    incoming = callee.ringing_call()
    incoming.answer_with(200)
    ep.wait_for(lambda: caller.state == "CONFIRMED" and incoming.state == "CONFIRMED", what="call confirmed")
    return incoming


def wait_rtp_both_ways(ep: SipEndpoint, a: PhoneCall, b: PhoneCall) -> None:
    start_a, start_b = a.rtp_packets()[0], b.rtp_packets()[0]
    ep.wait_for(
        lambda: a.rtp_packets()[0] > start_a + 10 and b.rtp_packets()[0] > start_b + 10,
        what="RTP flowing both ways",
    )


def phone_at_lifeline(ep: SipEndpoint, lifeline: LifelineProcess, user: str, password: str) -> Phone:
    """A phone with Lifeline itself as registrar and outbound proxy (a backup registrar), not yet registered."""
    uri = f"sip:127.0.0.1:{lifeline.sip_port}"
    return ep.phone(user, password, domain=CLOUD_HOST, registrar=uri, proxy=uri + ";lr")


def test_phones_registered_in_normal_call_each_other_in_survival(
    sip_endpoint: SipEndpoint, cloud: LabCloud, lifeline: LifelineProcess
) -> None:
    ep = sip_endpoint
    alice, bob = registered_via_lifeline(ep, lifeline, cloud, "1001", "1002")
    # NORMAL: the cloud holds the bindings, Lifeline holds copies.
    assert {"1001", "1002"} <= set(cloud.bindings())
    status = lifeline.status()
    assert status["mode"]["mode"] == "normal"
    assert status["registrations"]["users"] == 2

    cloud.stop()
    lifeline.set_mode("survival")
    assert lifeline.status()["mode"]["mode"] == "survival"

    call = alice.call("1002")
    incoming = answer_and_confirm(ep, call, bob)
    wait_rtp_both_ways(ep, call, incoming)

    call.hold()
    ep.wait_for(
        lambda: (
            incoming.media_status == pj.PJSUA_CALL_MEDIA_REMOTE_HOLD
            and call.media_status == pj.PJSUA_CALL_MEDIA_LOCAL_HOLD
        ),
        what="bob to see the hold",
    )
    call.resume()  # at once, as a machine can: the ACK of the hold may reach bob after it
    ep.wait_for(lambda: incoming.media_status == pj.PJSUA_CALL_MEDIA_ACTIVE, what="bob to see the call resumed")
    wait_rtp_both_ways(ep, call, incoming)

    incoming.hang_up()
    ep.wait_for(lambda: call.state == "DISCONNECTED", what="alice to see bob hang up")


def test_survival_refuses_wrong_password_and_unknown_users_alike(
    sip_endpoint: SipEndpoint, cloud: LabCloud, lifeline: LifelineProcess
) -> None:
    ep = sip_endpoint
    lifeline.set_mode("survival")
    wrong = phone_via_lifeline(ep, lifeline, cloud, "1001", password="not-the-password")
    stranger = phone_via_lifeline(ep, lifeline, cloud, "1999", password="not-a-password")
    assert wrong.register() == 401
    assert stranger.register() == 401
    assert lifeline.status()["registrations"]["users"] == 0


def test_survival_answers_404_for_unknown_numbers_and_480_for_absent_phones(
    sip_endpoint: SipEndpoint, cloud: LabCloud, lifeline: LifelineProcess
) -> None:
    ep = sip_endpoint
    alice = registered_in_survival(ep, lifeline, cloud, "1001")
    unknown = alice.call("1099")
    ep.wait_for(lambda: unknown.state == "DISCONNECTED", what="the call to 1099 to fail")
    assert unknown.record.last_code == 404
    absent = alice.call("1003")
    ep.wait_for(lambda: absent.state == "DISCONNECTED", what="the call to 1003 to fail")
    assert absent.record.last_code == 480


def test_backup_registrar_phones_register_to_lifeline_directly(
    sip_endpoint: SipEndpoint, cloud: LabCloud, lifeline: LifelineProcess
) -> None:
    ep = sip_endpoint
    lifeline.set_mode("survival")
    carol = phone_at_lifeline(ep, lifeline, "1003", PASSWORDS["1003"])
    alice = phone_via_lifeline(ep, lifeline, cloud, "1001")
    assert carol.register() == 200
    assert alice.register() == 200
    talk(ep, alice, carol, "1003", caller_hangs_up=True)


def bindings_of(lifeline: LifelineProcess, number: str) -> list[dict[str, object]]:
    """Kamailio's bindings of number."""
    text = contacts(lifeline, number)
    return [entry["Contact"] for entry in json.loads(text)["Contacts"]] if text else []


def test_survival_keeps_bindings_short_and_a_phone_leaving_takes_its_binding_along(
    sip_endpoint: SipEndpoint, lifeline: LifelineProcess
) -> None:
    ep = sip_endpoint
    lifeline.set_mode("survival")
    carol = phone_at_lifeline(ep, lifeline, "1003", PASSWORDS["1003"])
    assert carol.register() == 200  # pjsua2 asks for 300 s
    (binding,) = bindings_of(lifeline, "1003")
    # survival.register_expires (60 s): the phone comes back soon, to the cloud once it answers again.
    assert 0 < int(str(binding["Expires"])) <= 60
    carol.set_registration(False)  # Expires: 0, which the cap must leave alone
    ep.wait_for(lambda: len(carol.reg_codes) >= 2, 10, "carol to unregister")
    assert carol.reg_codes[-1] == 200 and bindings_of(lifeline, "1003") == []


def test_killed_kamailio_is_restarted_and_phones_register_again(
    sip_endpoint: SipEndpoint, cloud: LabCloud, lifeline: LifelineProcess
) -> None:
    ep = sip_endpoint
    alice = registered_in_survival(ep, lifeline, cloud, "1001")
    before = lifeline.status()["sip"]["kamailio"]
    os.kill(before["pid"], signal.SIGKILL)

    def restarted() -> bool:
        kam = lifeline.status()["sip"]["kamailio"]
        return bool(kam["restarts"] == 1 and kam["state"] == "running" and kam["pid"] != before["pid"])

    ep.wait_for(restarted, timeout=30, what="the supervisor to restart Kamailio")
    # It comes back in SURVIVAL and serves the phone's next registration itself.
    assert lifeline.status()["mode"]["mode"] == "survival"
    assert alice.register() == 200
    events = [e["message"] for e in lifeline.status()["events"]]
    assert any("normal → survival" in m for m in events)


def test_invite_falls_back_locally_when_the_cloud_stops_answering(
    sip_endpoint: SipEndpoint, cloud: LabCloud, lifeline: LifelineProcess
) -> None:
    ep = sip_endpoint
    alice, bob = registered_via_lifeline(ep, lifeline, cloud, "1001", "1002")
    # A normal call goes through the cloud first.
    talk(ep, alice, bob, caller_hangs_up=True)

    # Held in NORMAL by hand, so that this shows the per-request fallback alone, not detection.
    lifeline.set_mode("normal")
    cloud.pause()
    try:
        call = alice.call("1002")
        ep.wait_for(lambda: len(bob.incoming) == 2, timeout=15, what="bob's phone to ring via fallback")
        incoming = bob.incoming[-1]
        incoming.answer_with(200)
        ep.wait_for(lambda: call.state == "CONFIRMED", what="the fallback call to be answered")
        wait_rtp_both_ways(ep, call, incoming)
        call.hang_up()
        ep.wait_for(lambda: incoming.state == "DISCONNECTED", what="bob to see the hang-up")
        assert lifeline.status()["mode"]["mode"] == "normal"
    finally:
        cloud.resume()


def bound_contact(daemon: LifelineProcess, number: str) -> str:
    """The contact URI Lifeline keeps for number's binding (what an eavesdropper on the LAN would copy)."""
    text = json.dumps(
        KamailioRpc(daemon.workdir / "run" / "kamailio-rpc.sock").call_blocking("ul.lookup", "location", number)
    )
    found = re.search(rf"sip:{number}@127\.0\.0\.1:\d+[^\"]*", text)
    assert found, text
    return found[0]


@pytest.mark.parametrize("source", ["127.0.0.21", "127.0.0.1"])
def test_fallback_serves_a_caller_only_from_the_address_of_its_binding(
    sip_endpoint: SipEndpoint, cloud: LabCloud, lifeline: LifelineProcess, source: str
) -> None:
    # While the cloud is silent Lifeline vouches for a caller by its binding. Another LAN host (or
    # another program on alice's own host) writing alice's number and contact in its INVITE is not alice.
    ep = sip_endpoint
    alice, bob = registered_via_lifeline(ep, lifeline, cloud, "1001", "1002")
    lifeline.set_mode("normal")
    cloud.pause()
    try:
        with SipClient(("127.0.0.1", lifeline.sip_port), source) as attacker:
            uri = f"sip:1002@{CLOUD_HOST}"
            forged = attacker.request(
                "INVITE", uri, from_uri=f"<sip:1001@{CLOUD_HOST}>", to_uri=f"<{uri}>",
                headers=(f"Contact: <{bound_contact(lifeline, '1001')}>", "Content-Type: application/sdp"), body=SDP,
            )  # fmt: skip
            answer = attacker.final(forged, timeout=20)
        assert answer is not None and answer.code >= 400, answer
        ep.pump(200)
        assert len(bob.incoming) == 0, "bob's phone rang for a caller who only wrote alice's name"
        # alice herself, from her own address, is served locally as before.
        call = alice.call("1002")
        ep.wait_for(lambda: len(bob.incoming) == 1, timeout=15, what="bob's phone to ring via fallback")
        call.hang_up()
        ep.wait_for(lambda: call.state == "DISCONNECTED", what="alice's call to end")
    finally:
        cloud.resume()


def test_phones_whose_sip_user_is_not_their_number_are_reached_by_number(
    sip_endpoint: SipEndpoint, cloud: LabCloud, lifeline: LifelineProcess, tmp_path: Path
) -> None:
    # Kazoo and Wazo give devices SIP users like "user_k3x9"; people still dial the extension number.
    extra = tmp_path / "devices.csv"
    extra.write_text(
        "number,password,auth_user\n2001,device-secret-2001,user_k3x9\n2002,device-secret-2002,user_q7w2\n"
    )
    lifeline.cli("extensions", "import", str(extra))
    ep = sip_endpoint
    lifeline.set_mode("survival")
    device = phone_at_lifeline(ep, lifeline, "user_k3x9", "device-secret-2001")
    alice = phone_via_lifeline(ep, lifeline, cloud, "1001")
    assert device.register() == 200 and alice.register() == 200
    talk(ep, alice, device, "2001")
    absent = alice.call("2002")  # a known number whose device is not registered
    ep.wait_for(lambda: absent.state == "DISCONNECTED", what="the call to 2002 to fail")
    assert absent.record.last_code == 480


def test_a_ring_group_rings_its_members_at_once_and_the_first_answer_wins(
    sip_endpoint: SipEndpoint, cloud: LabCloud, lifeline: LifelineProcess
) -> None:
    # The directory mirror delivered group 600 = {1002, 1003}; written as the mirror writes it.
    with sqlite3.connect(lifeline.workdir / "data" / "lifeline.db") as db:
        db.execute(
            "INSERT INTO ring_groups (number, name, members, source, vendor_id) VALUES (?, ?, ?, ?, ?)",
            ("600", "Reception", json.dumps(["1002", "1003"]), "test", "g600"),
        )
    ep = sip_endpoint
    lifeline.set_mode("survival")
    alice, bob = registered_via_lifeline(ep, lifeline, cloud, "1001", "1002")
    # Carol is a separate user agent (a process of her own) that answers after a moment.
    proxy = lifeline_proxy(lifeline)
    carol = PhoneProcess(
        "1003", PASSWORDS["1003"], domain=CLOUD_HOST, registrar=cloud.uri, proxy=proxy, answer_after=0.5
    )
    try:
        assert carol.wait("registered")["code"] == 200
        call = alice.call("600")
        bob_leg = bob.ringing_call()  # bob rings too, but does not pick up
        ep.wait_for(lambda: carol.has("confirmed"), what="carol to answer the group call")
        assert carol.has("ringing")
        ep.wait_for(lambda: call.state == "CONFIRMED", what="alice to be connected to the group")
        ep.wait_for(lambda: bob_leg.state == "DISCONNECTED", what="bob's phone to stop ringing")
        call.hang_up()
        ep.wait_for(lambda: carol.has("disconnected"), what="carol to see the hang-up")
    finally:
        carol.close()


def test_a_phone_that_went_away_gets_the_caller_a_480_not_a_long_wait(
    sip_endpoint: SipEndpoint, cloud: LabCloud, lifeline: LifelineProcess
) -> None:
    ep = sip_endpoint
    alice = registered_in_survival(ep, lifeline, cloud, "1001")
    # Carol registers in SURVIVAL, then freezes (a phone switched off keeps its binding until it expires).
    carol = PhoneProcess(
        "1003", PASSWORDS["1003"], domain=CLOUD_HOST, registrar=cloud.uri, proxy=lifeline_proxy(lifeline)
    )
    try:
        assert carol.wait("registered")["code"] == 200
        os.kill(carol.proc.pid, signal.SIGSTOP)
        started = time.monotonic()
        call = alice.call("1003")
        ep.wait_for(lambda: call.state == "DISCONNECTED", timeout=40, what="the call to the frozen phone to end")
        print(
            f"call to a phone that went away ended with {call.record.last_code} in {time.monotonic() - started:.2f} s"
        )
        assert call.record.last_code == 480
        assert not carol.has("ringing")
    finally:
        os.kill(carol.proc.pid, signal.SIGCONT)
        carol.close()


def sipp(*args: str, cwd: Path) -> subprocess.Popen[bytes]:
    """One sipp call; its messages and errors are logged in cwd."""
    return subprocess.Popen(
        ["sipp", *args, "-trace_msg", "-trace_err", "-nostdin", "-m", "1", "-timeout", "30", "-timeout_error"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=cwd,
    )


def test_a_phone_that_rings_late_is_not_cut_short(
    sip_endpoint: SipEndpoint, cloud: LabCloud, lifeline: LifelineProcess, tmp_path: Path
) -> None:
    # A second, independent SIP stack (sipp) plays a slow phone: 100 at once, 180 after 2.5 s, 200 after
    # 2.5 s more. Only silence may end a call early; a phone that answered rings its full time.
    ep = sip_endpoint
    alice = registered_in_survival(ep, lifeline, cloud, "1001")
    port = free_port("127.0.0.1")
    common = ("-i", "127.0.0.1", "-p", str(port), "-s", "1003")
    register = sipp(
        f"127.0.0.1:{lifeline.sip_port}", "-sf", str(DATA / "sipp_register.xml"), *common,
        "-key", "cloud", f"{CLOUD_HOST}:{cloud.port}", "-au", "1003", "-ap", PASSWORDS["1003"],
        "-auth_uri", f"{CLOUD_HOST}:{cloud.port}", cwd=tmp_path,
    )  # fmt: skip
    assert register.wait(30) == 0, "sipp could not register 1003"
    slow = sipp("-sf", str(DATA / "sipp_uas_rings_late.xml"), *common, cwd=tmp_path)
    try:
        wait_udp_bound(port)
        started = time.monotonic()
        call = alice.call("1003")
        ep.wait_for(lambda: call.state in ("CONFIRMED", "DISCONNECTED"), timeout=20, what="the slow phone to answer")
        print(f"the slow phone answered after {time.monotonic() - started:.2f} s")
        assert call.state == "CONFIRMED", f"cut short: {call.record.last_code} {call.record.last_reason}"
        assert 180 in call.record.codes
        call.hang_up()
        assert slow.wait(15) == 0, "sipp did not see the call through to the BYE"
    finally:
        if slow.poll() is None:
            slow.kill()
            slow.wait()
