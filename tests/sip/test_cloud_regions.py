"""Two cloud SBCs (two regions): the secondary carries calls while the primary is down; SURVIVAL needs both down."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.lab.cloud import LabCloud
from gateway.lab.daemon import LifelineProcess
from gateway.lab.phones import Phone, SipEndpoint, talk
from tests.conftest import phone_via_lifeline, running_lifeline, two_regions

pytestmark = pytest.mark.usefixtures("fresh_phones")


@pytest.fixture
def regions(tmp_path: Path) -> Iterator[tuple[LabCloud, LabCloud]]:
    with two_regions(tmp_path) as clouds:
        yield clouds


# On loopback a few round trips are far below the floor: every INVITE (and REGISTER) gets the floor's wait
# from each SBC. The default 300 ms leaves a busy box's stall enough to serve a call locally that the
# secondary would have taken; 1 s, as long as a probe waits for the SBC's answer, does not.
FALLBACK = {"fallback": {"floor_ms": 1000}}


@pytest.fixture
def lifeline(tmp_path: Path, regions: tuple[LabCloud, LabCloud], extensions_csv: Path) -> Iterator[LifelineProcess]:
    primary, secondary = regions
    sbcs = {"sbc": [primary.uri, secondary.uri]}
    with running_lifeline(tmp_path / "lifeline", extensions_csv, sbcs, FALLBACK) as daemon:
        yield daemon


def phone(ep: SipEndpoint, lifeline: LifelineProcess, cloud: LabCloud, user: str) -> Phone:
    # The registrar URI names the primary; Lifeline decides which SBC the REGISTER really goes to.
    return phone_via_lifeline(ep, lifeline, cloud, user, domain="cloud.test")


def wait_status(
    lifeline: LifelineProcess, done: Callable[[dict[str, Any]], bool], what: str, within: float = 20.0
) -> tuple[dict[str, Any], set[str]]:
    """The first status that satisfies done, and every mode seen on the way."""
    modes: set[str] = set()
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        status = lifeline.status()
        modes.add(status["mode"]["mode"])
        if done(status):
            return status, modes
        time.sleep(0.2)
    raise AssertionError(f"no {what} within {within:.0f} s: {lifeline.status()['health']}")


def doctor_verdicts(lifeline: LifelineProcess) -> dict[str, str]:
    """`lifeline doctor --json`'s verdict on each cloud SBC (every line about one has its fix)."""
    checks = json.loads(lifeline.cli("doctor", "--json", check=False).stdout)["checks"]
    sbcs = [c for c in checks if c["name"].startswith("cloud-sip")]
    assert all(c["fix"] for c in sbcs if c["verdict"] != "pass"), sbcs
    return {c["name"]: c["verdict"] for c in sbcs}


def states(status: dict[str, Any]) -> list[str]:
    return [sbc["state"] for sbc in status["health"]["sbcs"]]


def test_the_secondary_region_carries_the_calls_while_the_primary_is_down_and_survival_needs_both_down(
    sip_endpoint: SipEndpoint, regions: tuple[LabCloud, LabCloud], lifeline: LifelineProcess
) -> None:
    ep = sip_endpoint
    primary, secondary = regions
    status, _ = wait_status(lifeline, lambda s: states(s) == ["up", "up"], "both SBCs up")
    assert [sbc["uri"] for sbc in status["health"]["sbcs"]] == [primary.uri, secondary.uri]
    assert all(sbc["rtt_ms"] is not None for sbc in status["health"]["sbcs"])
    alice, bob = phone(ep, lifeline, primary, "1001"), phone(ep, lifeline, primary, "1002")
    assert alice.register() == 200 and bob.register() == 200
    assert {"1001", "1002"} <= set(primary.bindings()) and not secondary.bindings()
    used = secondary.transactions()
    talk(ep, alice, bob)  # through the primary while it is up
    assert secondary.transactions() == used

    # The primary region goes silent: the secondary takes over, and Lifeline stays out of the way.
    primary.pause()
    status, modes = wait_status(lifeline, lambda s: states(s) == ["down", "up"], "the primary marked down")
    assert modes == {"normal"}
    shown = lifeline.cli("status").stdout
    assert f"sbc {primary.uri}: down" in shown and f"sbc {secondary.uri}: up" in shown
    # `lifeline doctor`: a line per region; the silent one warns (with its fix) while the other answers.
    assert doctor_verdicts(lifeline) == {"cloud-sip-1": "warn", "cloud-sip-2": "pass"}
    assert alice.register() == 200 and bob.register() == 200  # the phones' refresh reaches the secondary
    assert {"1001", "1002"} <= set(secondary.bindings())
    used = secondary.transactions()
    talk(ep, alice, bob)  # the secondary sends bob's INVITE back from its own address
    assert secondary.transactions() > used, "the call did not go through the secondary"
    status, modes = wait_status(lifeline, lambda s: True, "a status")
    assert status["mode"]["mode"] == "normal"
    assert "locally" not in lifeline.log_path.read_text(), "a call the secondary took was served locally"

    # Both regions gone: now, and only now, Lifeline serves the phones itself.
    secondary.pause()
    try:
        wait_status(lifeline, lambda s: s["mode"]["mode"] == "survival", "SURVIVAL with both SBCs down", 30)
        assert doctor_verdicts(lifeline) == {"cloud-sip-1": "fail", "cloud-sip-2": "fail"}
        talk(ep, alice, bob)
    finally:
        secondary.resume()
        primary.resume()


def test_an_invite_the_silent_primary_leaves_unanswered_goes_to_the_secondary_not_to_a_local_phone(
    sip_endpoint: SipEndpoint, regions: tuple[LabCloud, LabCloud], lifeline: LifelineProcess
) -> None:
    ep = sip_endpoint
    primary, secondary = regions
    wait_status(lifeline, lambda s: states(s) == ["up", "up"], "both SBCs up")
    alice, bob = phone(ep, lifeline, primary, "1001"), phone(ep, lifeline, primary, "1002")
    # Both regions know the phones (a cloud shares its registrations between regions; the lab's do not):
    # registered once through each.
    primary.pause()
    wait_status(lifeline, lambda s: states(s) == ["down", "up"], "the primary marked down")
    assert alice.register() == 200 and bob.register() == 200
    primary.resume()
    wait_status(lifeline, lambda s: states(s) == ["up", "up"], "the primary back up")
    assert alice.register() == 200 and bob.register() == 200
    assert {"1001", "1002"} <= set(primary.bindings()) & set(secondary.bindings())

    # The primary goes silent and the call leaves at once, before any probe could notice.
    primary.pause()
    try:
        used = secondary.transactions()
        talk(ep, alice, bob)
        assert secondary.transactions() > used, "the call did not go through the secondary"
        ep.wait_for(lambda: lifeline.logged("to the next cloud SBC"), 5, "the INVITE's move to the next SBC in the log")
        log = lifeline.log_path.read_text()
        assert "to the next cloud SBC" in log
        assert "locally" not in log, "the call was served locally though the secondary was up"
        assert lifeline.status()["mode"]["mode"] == "normal"
    finally:
        primary.resume()

    # The same for a phone's refresh: the REGISTER the silent primary leaves unanswered goes to the secondary.
    wait_status(lifeline, lambda s: states(s) == ["up", "up"], "the primary back up")
    primary.pause()
    try:
        assert alice.register() == 200

        def logged() -> bool:
            lines = lifeline.log_path.read_text().splitlines()
            return any("REGISTER" in line and "to the next one" in line for line in lines)

        # Kamailio's line reaches the daemon's log through a pipe: on a busy machine after the phone's 200.
        ep.wait_for(logged, 5, "the REGISTER's move to the next SBC in the log")
    finally:
        primary.resume()
