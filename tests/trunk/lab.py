"""A daemon with a trunk on a simulated modem, and phones on it: shared by the trunk and CDR end-to-end tests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.lab.daemon import LifelineProcess
from gateway.lab.phones import Phone, SipEndpoint

PASSWORDS = {"1001": "alice-trunk-1001", "1002": "bob-trunk-1002", "1009": "agent-trunk-1009"}
DOMAIN = "trunk.lifeline.test"
CALLER = "+4915112345678"


def start_trunked(
    workdir: Path,
    by_id_dir: Path,
    settings: dict[str, Any],
    trunk_extra: str = "",
    country: str = "DE",
    modem_extra: str = "",
    modem_up: Callable[[dict[str, Any]], bool] = lambda modem: modem.get("state") == "ready",
) -> LifelineProcess:
    """Start the daemon in SURVIVAL with agent 1009, ring group 1001+1002 and one Quectel modem; wait until ready.

    modem_up: when the modem counts as up (a modem without a SIM never reaches READY).
    """
    csv = workdir / "phones.csv"
    csv.write_text("number,password,name\n" + "".join(f"{n},{p},Ext {n}\n" for n, p in PASSWORDS.items()))
    daemon = LifelineProcess(workdir / "lifeline", {"sip": {"listen": "127.0.0.1", "children": 2}, **settings})
    with daemon.config_path.open("a") as toml:
        toml.write(
            f'[trunk]\nextension = "1009"\nring_group = ["1001", "1002"]\ncountry = "{country}"\n{trunk_extra}'
            f'[[trunk.modems]]\nname = "lte0"\nfamily = "quectel"\nby_id_dir = "{by_id_dir}"\n{modem_extra}'
        )
    daemon.cli("extensions", "import", str(csv))
    daemon.start()
    daemon.set_mode("survival")
    deadline = time.monotonic() + 30
    trunk: dict[str, Any] = {}
    while time.monotonic() < deadline:
        trunk = daemon.status().get("trunk") or {}
        if trunk.get("registered") == 200 and modem_up((trunk.get("modems") or [{}])[0]):
            return daemon
        time.sleep(0.2)
    log = daemon.log_path.read_text()[-3000:]
    daemon.stop()
    raise AssertionError(f"trunk never got ready: {json.dumps(trunk)[:1500]}\n{log}")


def leave_phones(request: Any) -> None:
    """After a test: its calls hung up and its lab phones gone (pjsua2 gives a call to a user's first account)."""
    if "sip_endpoint" in request.fixturenames:
        ep: SipEndpoint = request.getfixturevalue("sip_endpoint")
        ep.hang_up_all()
        for p in list(ep.phones):
            if p.domain == DOMAIN:
                p.shutdown()


def phone(ep: SipEndpoint, lifeline: LifelineProcess, user: str) -> Phone:
    """A registered phone with Lifeline as registrar and outbound proxy."""
    uri = f"sip:127.0.0.1:{lifeline.sip_port}"
    p = ep.phone(user, PASSWORDS[user], domain=DOMAIN, registrar=uri, proxy=uri + ";lr")
    assert p.register() == 200
    return p
