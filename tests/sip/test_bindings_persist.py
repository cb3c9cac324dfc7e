"""Registrations survive a restart: usrloc writes them back to its own file; phones are served before they refresh."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.lab.cloud import LabCloud
from gateway.lab.daemon import LifelineProcess
from gateway.lab.phones import Phone, SipEndpoint, talk
from gateway.sip.location import location_path
from gateway.sip.render import free_port
from tests.conftest import CLOUD_HOST, PASSWORDS, REALM

pytestmark = pytest.mark.usefixtures("fresh_phones")


def phone(ep: SipEndpoint, port: int, cloud: LabCloud, user: str) -> Phone:
    return ep.phone(user, PASSWORDS[user], domain=CLOUD_HOST, registrar=cloud.uri, proxy=f"sip:127.0.0.1:{port};lr")


def test_a_restart_in_an_outage_serves_the_phones_before_they_register_again(
    sip_endpoint: SipEndpoint, cloud: LabCloud, extensions_csv: Path, tmp_path: Path
) -> None:
    ep = sip_endpoint
    port = free_port("127.0.0.1")  # phones keep Lifeline's address across its restart, as on a LAN
    daemon = LifelineProcess(
        tmp_path / "lifeline",
        {"cloud": {"sbc": cloud.uri, "realm": REALM}, "sip": {"listen": "127.0.0.1", "port": port, "children": 2}},
    )
    daemon.cli("extensions", "import", str(extensions_csv))
    daemon.start()
    try:
        daemon.set_mode("survival")  # the outage; the override outlives the restart (it is in the store)
        alice, bob = phone(ep, port, cloud, "1001"), phone(ep, port, cloud, "1002")
        assert alice.register() == 200 and bob.register() == 200
        daemon.stop()
        with sqlite3.connect(location_path(daemon.workdir / "data" / "lifeline.db")) as db:
            kept = {row[0] for row in db.execute("SELECT username FROM location")}
        assert kept == {"1001", "1002"}
        assert oct(location_path(daemon.workdir / "data" / "lifeline.db").stat().st_mode & 0o777) == "0o600"
        refreshed = (len(alice.reg_codes), len(bob.reg_codes))

        daemon.start()
        talk(ep, alice, bob, caller_hangs_up=True)  # after the restart
        assert (len(alice.reg_codes), len(bob.reg_codes)) == refreshed  # neither phone had registered again
    finally:
        daemon.stop()
