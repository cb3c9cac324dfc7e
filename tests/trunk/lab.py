"""A daemon with a trunk on a simulated modem, and phones on it: shared by the trunk and CDR end-to-end tests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from gateway.lab.daemon import LifelineProcess
from gateway.lab.phones import Phone, PhoneCall, SipEndpoint
from gateway.trunk import tones
from gateway.trunk.profiles import Family
from gateway.trunk.sim import FarEnd, SimConfig
from gateway.trunk.sim.thread import SimThread

PASSWORDS = {"1001": "alice-trunk-1001", "1002": "bob-trunk-1002", "1009": "agent-trunk-1009"}
DOMAIN = "trunk.lifeline.test"
CALLER = "+4915112345678"


@contextmanager
def quectel_sim(by_id_dir: Path, seed: int, far: FarEnd | None = None, max_rings: int = 8) -> Iterator[SimThread]:
    """A simulated Quectel modem at 20 times real speed, its port linked in by_id_dir; stopped afterwards."""
    thread = SimThread(SimConfig(Family.QUECTEL, time_scale=0.05, seed=seed, max_rings=max_rings), by_id_dir, far)
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()


@contextmanager
def tone_sim(
    tmp_path_factory: pytest.TempPathFactory, seed: int, answer_after_s: float = 0.5, max_rings: int = 8
) -> Iterator[SimThread]:
    """quectel_sim in a fresh temporary folder, its far end answering after answer_after_s and playing 1 kHz."""
    far = FarEnd(source=tones.Tone((1000.0,)), answer_after_s=answer_after_s)
    with quectel_sim(tmp_path_factory.mktemp("sim") / "by-id", seed, far, max_rings=max_rings) as thread:
        yield thread


def start_trunked(
    workdir: Path,
    by_id_dir: Path,
    settings: dict[str, Any],
    trunk_extra: str = "",
    country: str = "DE",
    modem_extra: str = "",
    modem_up: Callable[[dict[str, Any]], bool] = lambda modem: modem.get("state") == "ready",
    *,
    passwords: dict[str, str] = PASSWORDS,
    ring_group: tuple[str, ...] = ("1001", "1002"),
    mode: str = "survival",
    also: Callable[[dict[str, Any]], bool] = lambda status: True,
) -> LifelineProcess:
    """Start the daemon (mode held) with agent 1009, the ring group and one Quectel modem; wait until ready.

    passwords: the extensions (1009 among them); modem_up: when the modem counts as up (a modem without a
    SIM never reaches READY); also: what else the status must show first.
    """
    csv = workdir / "phones.csv"
    csv.write_text("number,password,name\n" + "".join(f"{n},{p},Ext {n}\n" for n, p in passwords.items()))
    daemon = LifelineProcess(workdir / "lifeline", {"sip": {"listen": "127.0.0.1", "children": 2}, **settings})
    with daemon.config_path.open("a") as toml:
        toml.write(
            f'[trunk]\nextension = "1009"\nring_group = {json.dumps(list(ring_group))}\n'
            f'country = "{country}"\n{trunk_extra}'
            f'[[trunk.modems]]\nname = "lte0"\nfamily = "quectel"\nby_id_dir = "{by_id_dir}"\n{modem_extra}'
        )
    daemon.cli("extensions", "import", str(csv))
    daemon.start()
    daemon.set_mode(mode)
    wait_trunk_ready(daemon, modem_up, also)
    return daemon


def wait_trunk_ready(
    daemon: LifelineProcess,
    modem_up: Callable[[dict[str, Any]], bool] = lambda modem: modem.get("state") == "ready",
    also: Callable[[dict[str, Any]], bool] = lambda status: True,
) -> None:
    """Wait until the agent registered and the first modem is up (and also(status) holds); else stop it and fail."""
    deadline = time.monotonic() + 30
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = daemon.status()
        trunk = status.get("trunk") or {}
        if trunk.get("registered") == 200 and modem_up((trunk.get("modems") or [{}])[0]) and also(status):
            return
        time.sleep(0.2)
    log = daemon.log_path.read_text()[-3000:]
    daemon.stop()
    shown = {part: status.get(part) for part in ("trunk", "health")}
    raise AssertionError(f"trunk never got ready: {json.dumps(shown)[:1500]}\n{log}")


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


def hang_up_trunk_call(ep: SipEndpoint, sim: SimThread, call: PhoneCall, what: str = "the modem call to end") -> None:
    """The phone hangs up call; wait until the simulated modem's call is gone too."""
    call.hang_up()
    ep.wait_for(lambda: sim.call(lambda: sim.sim.call is None), 10, what)
