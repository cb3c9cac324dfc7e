"""The trunk across an [ha] pair: a call on the box without a modem leaves through the peer's; forgeries do not.

Two real daemons in namespaces (gateway.lab.pair_lab); box B alone has a trunk agent on the pty modem
simulator; a pjsua2 phone on the LAN registers at box A and dials out. A forged forwarded INVITE, from a
LAN address or from the peer with a bad signature, is refused and never reaches the modem.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pjsua2 as pj
import pytest

from gateway.ha.key import read_key
from gateway.lab.daemon import LifelineProcess
from gateway.lab.netns import inside
from gateway.lab.pair_lab import BOX_A, BOX_B, DMQ_PORT, FORGER, PHONES, PairLab, status_line_over_tcp
from gateway.lab.phones import Phone, SipEndpoint
from gateway.lab.waits import wait_until
from gateway.sip.pair_trunk import HEADER, trunk_key
from gateway.trunk import tones
from gateway.trunk.profiles import Family
from gateway.trunk.sim import FarEnd, SimConfig
from gateway.trunk.sim.thread import SimThread
from tests.conftest import hmac_b64url, short_pair_lab, tcp_request

pytestmark = pytest.mark.usefixtures("fresh_phones")

PASSWORDS = {"1001": "alice-pair-1001", "1009": "agent-pair-1009"}
DOMAIN = "pairtrunk.lifeline.test"
NUMBER = "0301234567"


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimThread]:
    """The simulated modem box B's agent uses (a pty: reachable from its namespace through the file system)."""
    far = FarEnd(source=tones.Tone((1000.0,)), answer_after_s=1.0)
    thread = SimThread(SimConfig(Family.QUECTEL, time_scale=0.05, seed=5, max_rings=400), tmp_path / "by-id", far)
    thread.start()
    yield thread
    thread.stop()


def trunk_toml(by_id_dir: Path) -> str:
    return (
        '[trunk]\nextension = "1009"\ncountry = "DE"\npoll_s = 1.0\ncommand_timeout_s = 1.0\n'
        f'[[trunk.modems]]\nname = "lte0"\nfamily = "quectel"\nby_id_dir = "{by_id_dir}"\n'
    )


# Box A: no trunk at all, or a trunk whose modem is gone (its agent runs and answers 503: no line).
@pytest.fixture(params=["none", "no-line"])
def pair(
    request: pytest.FixtureRequest, sip_endpoint: SipEndpoint, sim: SimThread, tmp_path: Path
) -> Iterator[PairLab]:
    """Both boxes up, box B with the trunk (ready); this thread and pjsua2's sockets on the LAN."""
    csv = tmp_path / "phones.csv"
    csv.write_text("number,password,name\n" + "".join(f"{n},{p},Ext {n}\n" for n, p in PASSWORDS.items()))
    with short_pair_lab(f"pt{os.getpid() % 1000}", csv) as lab:
        with lab.b.config_path.open("a") as toml:
            toml.write(trunk_toml(sim.sim.by_id_dir))
        if request.param == "no-line":
            (tmp_path / "no-modem").mkdir()
            with lab.a.config_path.open("a") as toml:
                toml.write(trunk_toml(tmp_path / "no-modem"))
        lab.start(lab.a)
        lab.start(lab.b)
        wait_until(lambda: trunk_ready(lab), "box B's trunk to be ready", timeout=40, step=0.2)
        if request.param == "no-line":
            wait_until(lambda: (lab.a.status().get("trunk") or {}).get("registered") == 200, "A's agent", 30, 0.2)
        with inside(lab.ns["lan"]):
            yield lab
            sip_endpoint.reset()


def trunk_ready(lab: PairLab) -> bool:
    trunk = lab.b.status().get("trunk") or {}
    return bool(trunk.get("registered") == 200 and (trunk.get("modems") or [{}])[0].get("state") == "ready")


def phone(ep: SipEndpoint, user: str, server: str) -> Phone:
    uri = f"sip:{server}:5060"
    p = ep.phone(user, PASSWORDS[user], domain=DOMAIN, registrar=uri, proxy=uri + ";lr", host=PHONES)
    assert p.register() == 200
    return p


def dialled(sim: SimThread) -> list[str]:
    return list(sim.call(lambda: list(sim.sim.far_end.dialled)))


def test_a_call_on_the_box_without_a_modem_leaves_through_the_peers(
    sip_endpoint: SipEndpoint, pair: PairLab, sim: SimThread
) -> None:
    ep = sip_endpoint
    alice = phone(ep, "1001", BOX_A)  # box A has no modem at all
    call = alice.call(NUMBER)
    ep.wait_for(lambda: call.state == "CONFIRMED", 30, "the far end to answer through box B's modem")
    assert dialled(sim)[-1] == "+49" + NUMBER[1:]
    ep.wait_for(lambda: call.media_status == pj.PJSUA_CALL_MEDIA_ACTIVE, 10, "media with box B's agent")
    heard = sim.call(lambda: len(sim.sim.far_end.heard))
    ep.wait_for(lambda: sim.call(lambda: len(sim.sim.far_end.heard)) > heard + 8000, 15, "the phone's audio")
    # The phone's hang-up goes A -> B -> agent, and ends the modem's call.
    call.hang_up()
    ep.wait_for(lambda: sim.call(lambda: sim.sim.call is None), 15, "the modem call to end")
    # And the far end's hang-up comes back agent -> B -> A -> phone.
    again = alice.call(NUMBER)
    ep.wait_for(lambda: again.state == "CONFIRMED", 30, "the second call")
    sim.call(sim.sim.hang_up_far_end)
    ep.wait_for(lambda: again.state == "DISCONNECTED", 15, "the far end's hang-up at the phone")
    # An emergency call too: the modem that is left takes it.
    emergency = alice.call("112")
    ep.wait_for(lambda: "112" in dialled(sim), 30, "ATD112 at box B's modem")
    ep.wait_for(lambda: emergency.state == "CONFIRMED", 30, "the emergency call answered")
    emergency.hang_up()
    ep.wait_for(lambda: sim.call(lambda: sim.sim.call is None), 15, "the emergency call to end")


def trunks(box: LifelineProcess) -> dict[str, Any]:
    """The box's `lifeline status` part on both boxes' trunks."""
    return dict((box.status().get("ha") or {}).get("trunks") or {})


def test_each_box_shows_its_own_trunk_and_the_peers(pair: PairLab) -> None:
    wait_until(lambda: (trunks(pair.a).get("peer") or {}).get("state") == "ready", "A to show B's trunk", 15, 0.2)
    own_a = trunks(pair.a)["this_box"]["state"]
    assert own_a in ("none", "no-line"), own_a  # box A: no modem, or one that is gone
    wait_until(lambda: (trunks(pair.b).get("peer") or {}).get("state") == own_a, "B to show A's trunk", 15, 0.2)
    assert trunks(pair.b)["this_box"] == {"state": "ready", "ready_lines": 1, "lines": 1}
    text = pair.b.cli("status").stdout
    assert "pair trunks:   this box 1 of 1 lines ready; peer " in text, text
    assert ("peer NO LINE READY" if own_a == "no-line" else "peer no modem") in text, text


def forged_invite(source: str, box: str, stamp: str, key_file: Path | None = None, wait_s: float = 1.5) -> str | None:
    """An INVITE for the trunk over TCP from source to the box's pair socket; the first answer's status line.

    wait_s: how long an answer may take (short where none may come; longer where one must, on a busy box).
    """
    call_id, number = secrets.token_hex(12), NUMBER
    if stamp == "valid":  # signed with the pair's real key: only the source address is wrong
        ts = str(int(time.time()))
        assert key_file is not None
        key = trunk_key(read_key(key_file)).encode()
        stamp = f"1001;ts={ts};sig={hmac_b64url(key, f'{ts}:1001:{number}:{call_id}')}"

    def request(host: str, port: int) -> str:
        uri = f"sip:{number}@{box}"
        headers = (f"Contact: <sip:1001@{host}:{port}>", f"{HEADER}: {stamp}")
        return tcp_request("INVITE", uri, (host, port), f"<sip:1001@{host}>", f"<{uri}>", call_id, 70, headers)

    return status_line_over_tcp(source, box, DMQ_PORT, request, wait_s)


@pytest.mark.parametrize("pair", ["no-line"], indirect=True)  # both boxes have an agent: the likelier target
def test_a_forged_forwarded_call_never_reaches_the_modem(pair: PairLab, sim: SimThread) -> None:
    before = dialled(sim)
    bad = "1001;ts=" + str(int(time.time())) + ";sig=" + "A" * 43
    # From a LAN address that is not the peer: dropped unanswered, even with a signature made with the real key.
    assert forged_invite(FORGER, BOX_B, bad) is None
    assert forged_invite(FORGER, BOX_B, "valid", pair.a.workdir.parent / "pair.key") is None
    # From the peer's own address (over TCP), but not signed with the pair key: refused.
    with inside(pair.ns["a"]):
        answer = forged_invite(BOX_A, BOX_B, bad, wait_s=5.0)
        assert answer is not None and " 403 " in answer, answer
        stale = forged_invite(BOX_A, BOX_B, "1001;ts=1000000000;sig=" + "B" * 43, wait_s=5.0)
        assert stale is not None and " 403 " in stale, stale
    assert dialled(sim) == before
