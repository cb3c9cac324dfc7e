"""pjsua2 used safely (gateway.pjsafe): calls after they end; the library destroyed with calls and ports in any state.

pjsua2 allows one library per process and its failures are aborts (exit 134), so each scenario runs
in a process of its own: `python -m tests.test_pjsafe SCENARIO` (phones call each other directly on
loopback, no Kamailio needed).
"""

from __future__ import annotations

import gc
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_scenario(name: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.test_pjsafe", name, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_raw_pjsua2_aborts_when_a_port_outlives_the_library(tmp_path: Path) -> None:
    # The failure the wrapper exists for is real: without it, this is the suite's exit 134.
    done = run_scenario("raw-port-after-destroy", tmp_path)
    assert done.returncode == -6, done.stdout + done.stderr  # SIGABRT
    assert "pjmedia_conf_remove_port" in done.stderr


def test_a_call_the_far_end_hung_up_is_inert_and_does_not_touch_the_call_that_reuses_its_id(tmp_path: Path) -> None:
    done = run_scenario("after-disconnect", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "scenario passed" in done.stdout
    assert "Assertion" not in done.stderr


@pytest.mark.parametrize("exit_how", ["close", "atexit"])
def test_the_library_goes_with_calls_and_ports_in_every_state_without_an_abort(tmp_path: Path, exit_how: str) -> None:
    done = run_scenario(f"teardown-{exit_how}", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "scenario passed" in done.stdout
    assert "Assertion" not in done.stderr
    assert "destroyed before libDestroy" in done.stdout  # the stray ports were found and taken out in time


# ---------------------------------------------------------------------------- the scenarios (child process)


def _raw_port_after_destroy() -> None:
    import pjsua2 as pj

    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.logConfig.level = cfg.logConfig.consoleLevel = 0
    ep.libInit(cfg)
    ep.audDevManager().setNullDev()
    ep.libStart()
    tone = pj.ToneGenerator()
    tone.createToneGenerator(8000, 1)
    ep.libDestroy()
    del tone  # ~ToneGenerator → pjsua_conf_remove_port on a conference that is gone


def _two_phones() -> tuple[Any, Any, Any]:
    from gateway.lab.phones import SipEndpoint

    ep = SipEndpoint(log_level=0)
    bob = ep.phone("1002", "secret", domain="127.0.0.1", registrar="sip:127.0.0.1:9")
    bob_at = ep.ua.transport_address(bob.transport_id)
    alice = ep.phone("1001", "secret", domain=bob_at, registrar="sip:127.0.0.1:9")
    return ep, alice, bob


def _talk(ep: Any, alice: Any, bob: Any) -> tuple[Any, Any]:
    import pjsua2 as pj

    before = len(bob.incoming)
    call = alice.call("1002")
    ep.wait_for(lambda: len(bob.incoming) > before, 10, "bob's phone to ring")
    incoming = bob.incoming[-1]
    incoming.answer_with(200)
    ep.wait_for(
        lambda: call.state == incoming.state == "CONFIRMED" and call.media_status == pj.PJSUA_CALL_MEDIA_ACTIVE,
        10,
        "the call to be up",
    )
    ep.wait_for(lambda: call.rtp_packets()[0] > 5 and incoming.rtp_packets()[0] > 5, 10, "RTP both ways")
    return call, incoming


def _after_disconnect(tmp: Path) -> None:
    from gateway.errors import CallGoneError, UserAgentError
    from gateway.lab.phones import PhoneCall

    ep, alice, bob = _two_phones()
    call, incoming = _talk(ep, alice, bob)
    call.record_to(tmp / "first.wav")
    first_id = call.call_id
    incoming.hang_up()  # the far end hangs up
    ep.wait_for(lambda: call.state == "DISCONNECTED", 10, "alice to see the hang-up")
    assert call.gone and call.call_id == -1 and call.record.last_code == 200
    assert call.call_id_string and "1002" in call.remote_uri  # what was seen stays readable

    # pjsua hands out call ids round-robin: talk until a new call has the ended call's id.
    for _ in range(8):
        second, second_in = _talk(ep, alice, bob)
        if second.call_id == first_id:
            break
        second.hang_up()
        ep.wait_for(lambda c=second_in: c.state == "DISCONNECTED", 10, "an intermediate call to end")
        ep.pump(200)  # pjsua frees a slot once the BYE is answered
    assert second.call_id == first_id, "no call reused the ended call's id"
    for op in (
        call.rtp_packets,
        call.info,
        call.hold,
        call.unhold,
        lambda: call.answer_with(200),
        lambda: call.dial_dtmf("5"),
        lambda: call.transfer("sip:1003@127.0.0.1"),
        lambda: call.play(1000),
        lambda: call.record_to(tmp / "late.wav"),
    ):
        try:
            op()
        except CallGoneError:
            continue
        raise AssertionError(f"{op} reached pjsua2 on an ended call")
    call.hang_up()
    call.stop_media()
    assert not call.has_active_audio()
    ep.pump(300)
    assert second.state == second_in.state == "CONFIRMED", "the ended call's hang-up reached the new call"
    assert second.rtp_packets()[0] > 0

    # A call never placed, and one that could not start, are gone too and cost pjsua nothing.
    never = PhoneCall(alice)
    assert not never.hangup() and never.gone
    bad = PhoneCall(alice)
    try:
        bad.make_call("not a sip uri")
    except UserAgentError:
        pass
    else:
        raise AssertionError("pjsua2 accepted a malformed URI")
    assert bad.gone
    second.hang_up()
    ep.wait_for(lambda: second_in.state == "DISCONNECTED", 10, "the second call to end")

    # Account ids are reused too: a removed phone, collected on another thread, leaves its successor alone.
    bob_at = ep.ua.transport_address(bob.transport_id)
    gone_phone = ep.phone("1005", "secret", domain=bob_at, registrar="sip:127.0.0.1:9")
    gone_phone.shutdown()
    successor = ep.phone("1006", "secret", domain=bob_at, registrar="sip:127.0.0.1:9")
    refs = [gone_phone]
    del gone_phone
    collector = threading.Thread(target=lambda: (refs.clear(), gc.collect()))
    collector.start()
    collector.join()
    third, third_in = _talk(ep, successor, bob)
    third.hang_up()
    ep.wait_for(lambda: third_in.state == "DISCONNECTED", 10, "the third call to end")
    assert ep.ua.live_calls == 0, ep.ua.live_calls
    ep.close()
    print("scenario passed", flush=True)


class Ear:
    """Builds a Python media port (its callbacks run on pjsua2's clock thread), as test_bridge's Ear."""

    @staticmethod
    def make() -> Any:
        import pjsua2 as pj

        from gateway.trunk.bridge import audio_format

        class Port(pj.AudioMediaPort):  # type: ignore[misc]
            def __init__(self) -> None:
                super().__init__()
                self.frames = 0
                self.createPort("ear", audio_format(8000, 20))

            def onFrameRequested(self, frame: Any) -> None:  # noqa: N802
                frame.type = pj.PJMEDIA_FRAME_TYPE_NONE

            def onFrameReceived(self, frame: Any) -> None:  # noqa: N802
                self.frames += 1

        return Port()


KEPT: list[Any] = []  # what a failed test's traceback would keep: it outlives the library


def _address(sock: socket.socket) -> str:
    host, port = sock.getsockname()
    return f"{host}:{port}"


def _invite(hole: socket.socket, to: str) -> None:
    """An INVITE to `to` (host:port) from a UA that will never answer again (no SDP: the offer waits for the answer)."""
    here = _address(hole)
    host, port = to.rsplit(":", 1)
    hole.sendto(
        (
            f"INVITE sip:1002@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {here};branch=z9hG4bK-pjsafe-1;rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:hole@{here}>;tag=hole1\r\nTo: <sip:1002@{to}>\r\n"
            f"Call-ID: pjsafe-hole-1\r\nCSeq: 1 INVITE\r\nContact: <sip:hole@{here}>\r\nContent-Length: 0\r\n\r\n"
        ).encode(),
        (host, int(port)),
    )


def _teardown(tmp: Path, *, close: bool) -> None:
    from gateway.lab.phones import PhoneCall, tone_generator

    ep, alice, bob = _two_phones()
    # pjsua2 allows 4 call legs here: one ended, then two talking, one ringing in, one calling out.
    ended, ended_in = _talk(ep, alice, bob)
    ended.hang_up()
    ep.wait_for(lambda: ended_in.state == "DISCONNECTED", 10, "the first call to end")
    ep.pump(300)  # pjsua frees the legs once the BYE is answered
    talking, talking_in = _talk(ep, alice, bob)
    talking.record_to(tmp / "talking.wav")
    adopted = ep.ua.adopt(tone_generator(1000))  # an adopted port linked with a live call
    talking.link(adopted, from_call=False)
    stray = Ear.make()  # a Python port nobody adopted, linked with the call both ways
    talking.link(stray)
    ep.wait_for(lambda: stray.frames > 5, 10, "the stray port to hear the call")
    hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # sends one INVITE, never answers anything
    hole.bind(("127.0.0.1", 0))
    _invite(hole, ep.ua.transport_address(bob.transport_id))
    ep.wait_for(lambda: len(bob.incoming) == 3 and bob.incoming[-1].state == "EARLY", 10, "bob's phone to ring")
    ringing = bob.incoming[-1]
    carol = ep.phone("1003", "secret", domain=_address(hole), registrar="sip:127.0.0.1:9")
    calling = carol.call("1004")  # stays CALLING
    ep.pump(50)
    assert calling.state == "CALLING", calling.state
    never = PhoneCall(alice)  # created, never placed
    loose = tone_generator(500)  # a port nobody adopted or linked
    cycle: list[Any] = [tone_generator(700)]
    cycle.append(cycle)  # garbage only the cycle collector finds
    calls = (ended, talking, talking_in, ringing, calling, never)
    KEPT.extend([*calls, adopted, stray, loose, alice, bob, carol, ep])
    gc.disable()  # the cycle stays for close() to find
    del cycle
    if close:
        ep.close()
        gc.enable()
        assert all(c.gone for c in calls)
        KEPT.clear()
        gc.collect()  # everything Python still had: inert
    print("scenario passed", flush=True)
    # not closed: the endpoint is closed at exit (atexit), and KEPT outlives it


SCENARIOS = {
    "raw-port-after-destroy": lambda tmp: _raw_port_after_destroy(),
    "after-disconnect": _after_disconnect,
    "teardown-close": lambda tmp: _teardown(tmp, close=True),
    "teardown-atexit": lambda tmp: _teardown(tmp, close=False),
}


if __name__ == "__main__":
    SCENARIOS[sys.argv[1]](Path(sys.argv[2]))
