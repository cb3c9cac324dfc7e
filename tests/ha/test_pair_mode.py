"""The pair agrees on the mode: the active box decides, the standby follows, an override holds for both.

Two real daemons (Kamailio, keepalived) in namespaces (gateway.lab.pair_lab) probing a real lab cloud
(a Kamailio) on the LAN; box A's way to the cloud is cut with nftables in its namespace. No override
at start: the boxes decide the mode themselves.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.lab.cloud import LabCloud
from gateway.lab.daemon import LifelineProcess
from gateway.lab.pair_lab import CLOUD, PairLab
from gateway.lab.waits import wait_until
from gateway.sip.dmq import SETTLED_LOG, START_SETTLED_S
from tests.conftest import REALM, lab_extensions

FAILOVER_S = 10  # three missed adverts plus skew (tests/ha/test_failover.py)
AGREE_S = 5  # a record every second, read every half second: well inside
CLOUD_PORT = 5080
# Probes every 0.2 s once one is missed: the cloud is gone within a second or two; a long hold-down
# keeps a box that saw SURVIVAL serving locally (RECOVERING) while the test looks.
HEALTH = {"lan_target": "off", "sip_interval_s": 0.5, "hold_down_s": 600}
# DMQ pings A sent while B was not up yet make A send B nothing for a few seconds, up to ~35 s after B's
# start (README); B asks A for everything once that is past (SETTLED_LOG). The tests begin there.
_tags = itertools.count()


@pytest.fixture
def pair(extensions_csv: Path) -> Iterator[PairLab]:
    """Both boxes in automatic mode, both seeing the cloud; A active, B standby."""
    tag = f"m{os.getpid() % 1000}{next(_tags) % 10}"
    workdir = Path(tempfile.mkdtemp(prefix=f"ll{tag}-"))  # short: unix socket paths live in it
    cloud_sbc = {"sbc": f"sip:{CLOUD}:{CLOUD_PORT}"}
    lab = PairLab(workdir, tag, extensions_csv, REALM, cloud=cloud_sbc, health=HEALTH)
    prefix = ("ip", "netns", "exec", lab.ns["lan"])
    cloud = LabCloud(workdir / "cloud", host=CLOUD, port=CLOUD_PORT, realm=REALM, prefix=prefix, children=1)
    try:
        cloud.add_subscribers(lab_extensions())
        cloud.start()
        lab.start(lab.a, override=None)
        wait_until(lambda: lab.role(lab.a) == "active", "box A to take the shared address", FAILOVER_S, 0.05)
        lab.start(lab.b, override=None)
        wait_until(lambda: lab.role(lab.b) == "standby", "box B to be standby", FAILOVER_S, 0.05)
        for box in (lab.a, lab.b):
            wait_until(lambda box=box: mode(box)["mode"] == "normal", "both boxes in NORMAL", AGREE_S, 0.1)

        def settled() -> bool:
            links = [box.status()["ha"]["peer_health"]["replication"] for box in (lab.a, lab.b)]
            return lab.b.logged(SETTLED_LOG) and links == ["active", "active"]

        wait_until(
            settled, "B's start to settle and both boxes' DMQ to see the other active", START_SETTLED_S + 30, 0.5
        )
        yield lab
    finally:
        lab.close()
        with contextlib.suppress(Exception):
            cloud.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def mode(box: LifelineProcess) -> dict[str, Any]:
    """The box's mode as `lifeline status` shows it."""
    return dict(box.status()["mode"])


def cut_from_cloud(lab: PairLab, role: str) -> None:
    """Drop everything the box sends to the cloud (its probes go unanswered)."""
    table = f"ll{role}cut"
    lab.run(role, "nft", "add", "table", "inet", table)
    lab.run(role, "nft", "add", "chain", "inet", table, "out", "{ type filter hook output priority 0 ; }")
    lab.run(role, "nft", "add", "rule", "inet", table, "out", "ip", "daddr", CLOUD, "drop")


def a_decides_survival_and_b_follows(lab: PairLab) -> None:
    """Cut A from the cloud: A goes to SURVIVAL on its own probes, B (whose probes answer) follows A."""
    cut_from_cloud(lab, "a")
    wait_until(lambda: mode(lab.a)["mode"] == "survival", "box A to decide SURVIVAL", AGREE_S, 0.1)
    wait_until(lambda: mode(lab.b)["mode"] == "survival", "box B to follow A into SURVIVAL", AGREE_S, 0.1)


def test_an_override_typed_on_either_box_holds_for_both(pair: PairLab) -> None:
    pair.a.set_mode("survival")
    took = wait_until(lambda: mode(pair.b)["override"] == "survival", "A's override on box B", AGREE_S, 0.1)
    assert mode(pair.b)["mode"] == "survival"
    # The last one typed wins, on whichever box: `auto` on B gives A back to its probes (NORMAL).
    pair.b.set_mode("auto")
    took_back = wait_until(lambda: mode(pair.a)["override"] == "auto", "B's override on box A", AGREE_S, 0.1)
    wait_until(lambda: mode(pair.a)["mode"] == "normal", "box A back in NORMAL", AGREE_S, 0.1)
    assert mode(pair.b)["mode"] == "normal" and mode(pair.b)["override"] == "auto"
    print(f"override A → B in {took:.1f} s, B → A in {took_back:.1f} s")


def test_the_active_box_decides_the_standby_follows_status_shows_both_and_a_takeover_keeps_the_mode(
    pair: PairLab,
) -> None:
    a_decides_survival_and_b_follows(pair)
    b = mode(pair.b)
    # B's own probes still find the cloud (detected NORMAL); it serves locally because A decided so.
    assert (b["detected"], b["following"], b["override"]) == ("normal", "survival", "auto")
    assert mode(pair.a)["following"] is None
    for box, peer_role, decides in ((pair.a, "standby", "this box"), (pair.b, "active", "peer")):
        ha = box.status()["ha"]
        health = ha["peer_health"]
        assert health["up"] and health["role"] == peer_role and health["replication"] == "active", health
        assert health["heard_s"] < 3 and health["lag_ms"] is not None
        assert ha["mode_agreement"]["decides"] == decides
    text_a, text_b = pair.a.cli("status").stdout, pair.b.cli("status").stdout
    assert "pair peer:     up: heard " in text_a and "it is standby in survival" in text_a
    assert "pair mode:     decided by this box (its probes and override); the peer follows" in text_a
    assert "pair peer:     up: heard " in text_b and "it is active in survival" in text_b
    assert "pair mode:     following the active box (survival)" in text_b
    assert "replication lag " in text_b

    # A dies: B takes over and starts in the mode A had decided, not in its own probes' NORMAL.
    pids = subprocess.run(["ip", "netns", "pids", pair.ns["a"]], capture_output=True, text=True).stdout.split()
    for sig in (signal.SIGSTOP, signal.SIGKILL):  # a power cut: box A says nothing more
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), sig)
    wait_until(lambda: pair.role(pair.b) == "active", "box B to take over", FAILOVER_S, 0.05)
    # B decides now, from SURVIVAL (the branch's mode); its own probes answer, so it moves on to
    # RECOVERING (reached only from SURVIVAL), and serves locally through the hold-down.
    wait_until(lambda: mode(pair.b)["mode"] == "recovering", "box B to recover from SURVIVAL", AGREE_S, 0.1)
    b = mode(pair.b)
    assert b["following"] is None and b["detected"] == "recovering"
    ha = pair.b.status()["ha"]
    assert ha["mode_agreement"]["decides"] == "this box"
    wait_until(lambda: not pair.b.status()["ha"]["peer_health"]["up"], "box B to see A silent", AGREE_S, 0.1)
    assert "pair peer:     SILENT" in pair.b.cli("status").stdout
