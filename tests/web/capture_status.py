"""Capture tests/data/daemon_status.json from a real daemon (by hand: `.venv/bin/python -m tests.web.capture_status`).

The daemon relays to a lab cloud (a real Kamailio answering the SIP probe), runs the trunk agent on the
simulated Quectel modem, mirrors a JSON file directory, and sends call records to a webhook nobody listens
on; two pjsua2 phones register through it and call each other in SURVIVAL, a third tries a wrong password,
then the mode goes back to auto (NORMAL) and the document is saved once the webhook has failed twice.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.lab.cloud import LabCloud
from gateway.lab.daemon import LifelineProcess
from gateway.lab.phones import SipEndpoint
from gateway.sip.render import free_port
from gateway.trunk import tones
from gateway.trunk.profiles import Family
from gateway.trunk.sim import FarEnd, SimConfig
from gateway.trunk.sim.thread import SimThread
from tests.cdr.helpers import new_secret
from tests.conftest import CLOUD_HOST, PASSWORDS, REALM, lab_extensions

OUT = Path(__file__).resolve().parent.parent / "data" / "daemon_status.json"
DIRECTORY = [
    {"number": "2001", "password": "first-secret-2001", "name": "Front desk", "groups": ["reception"]},
    {"number": "2002", "password": "second-secret-2002", "name": "Back office"},
]


def main(out: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="capture-"))
    far = FarEnd(source=tones.Tone((1000.0,)), answer_after_s=1.0)
    sim = SimThread(SimConfig(Family.QUECTEL, time_scale=0.05, seed=3), work / "by-id", far)
    sim.start()
    cloud = LabCloud(work / "cloud", host=CLOUD_HOST, port=free_port(CLOUD_HOST), realm=REALM)
    cloud.add_subscribers(lab_extensions())
    cloud.start()
    directory = work / "directory.json"
    directory.write_text(json.dumps({"extensions": DIRECTORY}))
    csv = work / "phones.csv"
    passwords = {**PASSWORDS, "1009": "agent-trunk-1009"}
    csv.write_text("number,password,name\n" + "".join(f"{n},{p},Ext {n}\n" for n, p in passwords.items()))
    daemon = LifelineProcess(
        work / "lifeline",
        {
            "cloud": {"sbc": cloud.uri, "realm": REALM},
            "sip": {"listen": "127.0.0.1", "children": 2},
            "mirror": {"source": "file", "file": str(directory), "interval_s": 60},
            "cdr": {"interval_s": 0.5, "backoff_base_s": 0.2, "backoff_max_s": 1.0, "batch_size": 50},
            "cdr.webhook": {"url": "http://127.0.0.1:9/cdr", "secret": new_secret(), "timeout_s": 1.0},
        },
    )
    with daemon.config_path.open("a") as toml:
        toml.write(
            '[trunk]\nextension = "1009"\nring_group = ["1001", "1002"]\ncountry = "DE"\n'
            f'[[trunk.modems]]\nname = "lte0"\nfamily = "quectel"\nby_id_dir = "{work / "by-id"}"\n'
        )
    daemon.cli("extensions", "import", str(csv))
    ep = SipEndpoint(1)

    def wait(ready: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = daemon.status()
            if ready(status):
                return status
            ep.pump(100)
        raise SystemExit(f"timed out waiting for {what}")

    try:
        daemon.start()
        daemon.set_mode("survival")
        wait(lambda s: (s["trunk"] or {}).get("registered") == 200, "the trunk agent's registration")
        wait(lambda s: (s["trunk"]["modems"] or [{}])[0].get("state") == "ready", "the modem")
        proxy = f"sip:127.0.0.1:{daemon.sip_port};lr"
        alice, bob = (
            ep.phone(n, PASSWORDS[n], domain=CLOUD_HOST, registrar=cloud.uri, proxy=proxy) for n in ("1001", "1002")
        )
        assert alice.register() == 200 and bob.register() == 200
        mallory = ep.phone("1003", "wrong-password", domain=CLOUD_HOST, registrar=cloud.uri, proxy=proxy)
        assert mallory.register() == 401
        call = alice.call("1002")
        bob.ringing_call().answer_with(200)
        ep.wait_for(lambda: call.state == "CONFIRMED", what="the call confirmed")
        call.hang_up()
        ep.wait_for(lambda: call.state == "DISCONNECTED", what="the call ended")
        wait(lambda s: s["cdr"]["records"].get("final", 0) >= 1, "the call record")
        daemon.set_mode("auto")
        status = wait(
            lambda s: (
                s["mode"]["mode"] == "normal" and s["cdr"]["sinks"][0]["failures"] >= 2 and s["mirror"]["last_ok"]
            ),
            "NORMAL, the webhook failing, the mirror synced",
        )
        out.write_text(json.dumps(status, indent=2, sort_keys=True) + "\n")
        print(f"saved {out}")
    finally:
        daemon.stop()
        cloud.stop()
        sim.stop()
        ep.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
