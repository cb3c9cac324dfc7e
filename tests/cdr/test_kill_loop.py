"""kill -9 of the daemon and of Kamailio at random points of capture and upload: every call reaches the sinks once.

Real daemon, real Kamailio, real pjsua2 phones, the real lab webhook sink (slow, so a kill lands in the
middle of a batch) and the CSV sink. The kill points come from a seeded RNG; the seed is printed and
can be replayed: LIFELINE_CDR_KILL_SEED=… LIFELINE_CDR_KILL_LOOPS=… pytest tests/cdr/test_kill_loop.py
"""

from __future__ import annotations

import contextlib
import csv
import os
import random
import signal
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest

from gateway.cdr.labsink import Fault, LabWebhookReceiver, ThreadedReceiver
from gateway.errors import UserAgentError
from gateway.lab.cloud import LabCloud
from gateway.lab.daemon import LifelineProcess
from gateway.lab.phones import PhoneCall, SipEndpoint
from gateway.sip.render import free_port
from tests.cdr.helpers import integrity_ok, new_secret, phone, wait_until
from tests.conftest import REALM

pytestmark = pytest.mark.usefixtures("fresh_phones")

LOOPS = int(os.environ.get("LIFELINE_CDR_KILL_LOOPS", "3"))
SEED = int(os.environ.get("LIFELINE_CDR_KILL_SEED", str(random.SystemRandom().randrange(2**32))))
SINK_DELAY_S = 0.25  # per request: a batch is in flight long enough for a kill to land in it


def gone(pid: int) -> bool:
    """Whether a process has exited (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


class Lab:
    """The daemon under test, its phones, and the kills."""

    def __init__(self, ep: SipEndpoint, daemon: LifelineProcess, cloud: LabCloud, rng: random.Random) -> None:
        self.ep = ep
        self.daemon = daemon
        self.rng = rng
        self.alice = phone(ep, daemon, cloud, "1001")
        self.bob = phone(ep, daemon, cloud, "1002")
        self.placed: set[str] = set()  # every call alice dialled
        self.reached: set[str] = set()  # calls Kamailio routed (bob's phone rang): each must be recorded
        self.kills: list[str] = []

    def register(self) -> None:
        """Both phones registered (Kamailio keeps bindings in memory: a restart loses them)."""
        for p in (self.alice, self.bob):
            deadline = time.monotonic() + 30
            while p.register() != 200:
                assert time.monotonic() < deadline, f"{p.user} cannot register again"
                self.ep.pump(200)

    def kill(self, where: str) -> None:
        """kill -9 the daemon or Kamailio (chosen by the RNG) and wait until both serve again."""
        status = self.daemon.status()
        kamailio = status["sip"]["kamailio"]
        target = self.rng.choice(["daemon", "kamailio"])
        self.kills.append(f"{target}@{where}")
        if target == "daemon":
            os.kill(status["pid"], signal.SIGKILL)
            # systemd (KillMode=control-group) kills what is left of the unit before the restart;
            # Kamailio may have gone already (its supervisor asked the kernel to end it with the daemon).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(kamailio["pid"], signal.SIGKILL)
            wait_until(lambda: gone(status["pid"]) and gone(kamailio["pid"]), 10, "the killed processes to go", self.ep)
            self.daemon.stop()  # reaps it
            self.daemon.start()
        else:
            os.kill(kamailio["pid"], signal.SIGKILL)

            def restarted() -> bool:
                now = self.daemon.status()["sip"]["kamailio"]
                return bool(now["state"] == "running" and now["restarts"] > kamailio["restarts"])

            wait_until(restarted, 30, "the supervisor to restart Kamailio", self.ep)
        self.register()

    def bob_rang(self, before: int) -> PhoneCall | None:
        """Bob's newest incoming call, if one arrived since `before`; records that it was routed."""
        if len(self.bob.incoming) <= before:
            return None
        incoming = self.bob.incoming[-1]
        self.reached.add(incoming.call_id_string)
        return incoming

    def settle_calls(self) -> None:
        """End whatever a kill left half done: ringing calls are refused, talking ones hung up."""
        self.ep.pump(100)
        for call in list(self.bob.incoming):
            if call.state not in ("DISCONNECTED", "CONFIRMED", "CONNECTING", "NULL"):
                with contextlib.suppress(UserAgentError):  # it may have ended meanwhile (a CANCEL got through)
                    call.answer_with(486)
        for call in [*self.alice.calls, *self.bob.incoming]:
            if call.state in ("CONFIRMED", "CONNECTING"):
                call.hang_up()  # nothing if it has ended meanwhile
        calls = [*self.alice.calls, *self.bob.incoming]
        # A CANCEL or BYE Kamailio lost is retransmitted for up to 32 s (RFC 3261 timer F).
        self.ep.wait_for(lambda: all(c.state in ("DISCONNECTED", "NULL") for c in calls), 45, "the calls to end")

    def one_call(self, kill: bool) -> None:
        """A call from alice to bob, with a kill in it if asked: while ringing, talking, just after it ended."""
        shape = self.rng.choice(["answered", "busy", "cancelled"])
        kill_at = self.rng.choice(["ringing", "talking", "ended"]) if kill else "none"
        if shape != "answered" and kill_at == "talking":
            kill_at = "ended"
        before = len(self.bob.incoming)
        call = self.alice.call("1002")
        self.ep.pump(20)
        self.placed.add(call.call_id_string)
        self.ep.wait_for(lambda: self.bob_rang(before) is not None, 15, "bob's phone to ring")
        incoming = self.bob_rang(before)
        assert incoming is not None
        if kill_at == "ringing":
            self.ep.pump(self.rng.randrange(0, 200))
            self.kill("ringing")
            self.settle_calls()
            return
        if shape == "answered":
            incoming.answer_with(200)
            self.ep.wait_for(lambda: call.state == "CONFIRMED", 15, "the call to be answered")
            if kill_at == "talking":
                self.kill("talking")
            call.hang_up()
        elif shape == "busy":
            incoming.answer_with(486)
        else:
            call.hang_up()
        if kill_at == "ended":
            # Somewhere between the last request leaving the phone and the record being folded.
            self.ep.pump(self.rng.randrange(0, 700))
            self.kill("ended")
        self.settle_calls()

    def upload_with_kill(self, sink: LabWebhookReceiver) -> None:
        """Back to NORMAL; kill while a batch is in flight to the slow sink."""
        requests = sink.requests
        self.daemon.set_mode("normal")
        wait_until(lambda: sink.requests > requests, 20, "the first batch to reach the sink", self.ep)
        self.ep.pump(self.rng.randrange(0, int(SINK_DELAY_S * 2000)))
        self.kill("upload")


def master_csv_ids(directory: Path) -> list[str]:
    """The uniqueid column (17th) of every row of every Master.csv file the CSV sink wrote."""
    ids: list[str] = []
    for path in sorted(directory.glob("cdr-*.csv")):
        with path.open(newline="") as fh:
            ids.extend(row[16] for row in csv.reader(fh))
    return ids


def test_kill_9_during_capture_and_upload_loses_and_duplicates_nothing(
    sip_endpoint: SipEndpoint, cloud: LabCloud, tmp_path: Path, extensions_csv: Path
) -> None:
    print(f"\nCDR kill loop: LIFELINE_CDR_KILL_SEED={SEED} LIFELINE_CDR_KILL_LOOPS={LOOPS}")
    rng = random.Random(SEED)
    secret = new_secret()
    csv_dir = tmp_path / "csv"
    receiver = LabWebhookReceiver(secret, policy=lambda index, ids: Fault(delay_s=SINK_DELAY_S))
    with ThreadedReceiver(receiver) as sink:
        daemon = LifelineProcess(
            tmp_path / "lifeline",
            {
                "cloud": {"sbc": cloud.uri, "realm": REALM},
                # A fixed port: the phones' outbound proxy stays valid across daemon restarts.
                "sip": {"listen": "127.0.0.1", "children": 2, "port": free_port("127.0.0.1")},
                "cdr": {"interval_s": 0.5, "backoff_base_s": 0.2, "backoff_max_s": 1.0, "batch_size": 2,
                        "ring_timeout_s": 5.0},
                "cdr.webhook": {"url": sink.url, "secret": secret, "timeout_s": 2.0},
                "cdr.csv": {"directory": str(csv_dir)},
            },
        )  # fmt: skip
        daemon.cli("extensions", "import", str(extensions_csv))
        daemon.start()
        lab = Lab(sip_endpoint, daemon, cloud, rng)
        try:
            for _ in range(LOOPS):
                daemon.set_mode("survival")
                lab.register()
                # Each loop: a kill in its first call, maybe in the others, and one during the upload.
                for index in range(rng.randint(2, 3)):
                    lab.one_call(kill=index == 0 or rng.random() < 0.75)
                lab.upload_with_kill(sink)
            # Let it settle: interrupted calls close (ring timeout), everything is delivered.
            daemon.set_mode("normal")

            def settled() -> bool:
                cdr = daemon.status()["cdr"]
                return cdr["records"]["open"] == 0 and all(s["pending"] == 0 for s in cdr["sinks"])

            wait_until(settled, 40, f"every record closed and delivered (seed {SEED}, kills {lab.kills})", sip_endpoint)
        finally:
            daemon.stop()
        context = f"seed {SEED}, kills {lab.kills}"
        db = daemon.workdir / "data" / "lifeline.db"
        with sqlite3.connect(db) as conn:
            stored = {r[0]: r[1] for r in conn.execute("SELECT id, call_id FROM cdrs")}
            outbox = Counter(r for r in conn.execute("SELECT sink, state FROM cdr_outbox"))
        calls_at_sink = Counter(r["call_id"] for r in sink.records.values())
        duplicated = {c: n for c, n in calls_at_sink.items() if n > 1}
        assert not duplicated, f"calls held more than once: {duplicated} ({context})"
        assert lab.reached <= set(calls_at_sink), f"calls lost: {lab.reached - set(calls_at_sink)} ({context})"
        assert set(calls_at_sink) <= lab.placed, context
        assert set(sink.records) == set(stored), context
        assert outbox == {("webhook", "delivered"): len(stored), ("csv", "delivered"): len(stored)}, context
        csv_ids = master_csv_ids(csv_dir)
        assert sorted(csv_ids) == sorted(stored), f"CSV rows != records ({context})"
        assert sink.bad_signatures == 0
        assert integrity_ok(db), context
        assert integrity_ok(db.with_name("lifeline.db.acc")), context
        assert len(lab.kills) >= 2 * LOOPS
        print(f"CDR kill loop: {len(lab.kills)} kills {lab.kills}; {len(stored)} calls held once")
