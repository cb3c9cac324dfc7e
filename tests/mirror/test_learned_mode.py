"""Learned mode: no directory at all, yet phones the cloud accepted keep calling in SURVIVAL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.lab.cloud import LabCloud
from gateway.lab.daemon import LifelineProcess
from gateway.lab.phones import SipEndpoint, talk
from gateway.lab.sipclient import SipClient
from tests.conftest import CLOUD_HOST, REALM, phone_via_lifeline

pytestmark = pytest.mark.usefixtures("fresh_phones")


@pytest.fixture
def learning_lifeline(tmp_path: Path, cloud: LabCloud) -> Iterator[LifelineProcess]:
    daemon = LifelineProcess(
        tmp_path / "lifeline",
        {
            "cloud": {"sbc": cloud.uri, "realm": REALM},
            "sip": {"listen": "127.0.0.1", "children": 2},
            "mirror": {"learned": True},
        },
    )
    daemon.start()  # no extensions imported, no directory source
    yield daemon
    daemon.stop()


def test_phones_seen_by_the_cloud_are_admitted_by_their_binding_and_strangers_are_not(
    sip_endpoint: SipEndpoint, cloud: LabCloud, learning_lifeline: LifelineProcess
) -> None:
    ep = sip_endpoint
    alice, bob = (phone_via_lifeline(ep, learning_lifeline, cloud, u) for u in ("1001", "1002"))
    assert alice.register() == 200 and bob.register() == 200  # the cloud authenticated them
    assert learning_lifeline.status()["extensions"] == 0

    cloud.stop()
    learning_lifeline.set_mode("survival")
    assert alice.register() == 200  # a refresh in SURVIVAL, admitted by its learned binding
    talk(ep, alice, bob, caller_hangs_up=True)  # the learned phones talk

    # A phone the cloud never accepted through Lifeline gets a challenge it cannot answer.
    stranger = phone_via_lifeline(ep, learning_lifeline, cloud, "1003")
    assert stranger.register() == 401

    # Another LAN host writing alice's number, with a contact of its own address, is not alice.
    with SipClient(("127.0.0.1", learning_lifeline.sip_port), "127.0.0.21") as forger:
        uri = f"sip:1002@{CLOUD_HOST}"
        invite = forger.request("INVITE", uri, from_uri=f"<sip:1001@{CLOUD_HOST}>", to_uri=f"<{uri}>")
        answer = forger.final(invite, timeout=5)
    assert answer is not None and answer.code in (401, 407), answer
    ep.pump(200)
    assert len(bob.incoming) == 1, "bob's phone rang for a host that only wrote alice's number"
