"""A box dies; its backup, restored onto a fresh install, serves the same phones and delivers the same records once.

Real daemons with their Kamailio (TLS on), real pjsua2 phones, a real survival call, the lab CDR webhook
sink. The backup is made while the old daemon runs; the new install has an empty data dir of its own.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.cdr.labsink import LabWebhookReceiver, ThreadedReceiver, seed_records
from gateway.lab.daemon import LifelineProcess
from gateway.lab.phones import Phone, SipEndpoint, talk
from gateway.store import Store
from tests.cdr.helpers import new_secret, wait_until

pytestmark = pytest.mark.usefixtures("fresh_phones")

PASSWORDS = {"1001": "alice-restore-1001", "1002": "bob-restore-1002"}
DOMAIN = "branch.lifeline.test"
SEEDED, ACKED = 23, 3  # records from before the outage; the first ACKED of them the sink already has


def phone(ep: SipEndpoint, daemon: LifelineProcess, user: str, password: str) -> Phone:
    uri = f"sip:127.0.0.1:{daemon.sip_port}"
    return ep.phone(user, password, domain=DOMAIN, registrar=uri, proxy=uri + ";lr")


def query(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute(sql).fetchall()


def test_a_restored_backup_serves_the_same_phones_and_delivers_each_record_once(
    sip_endpoint: SipEndpoint, tmp_path: Path
) -> None:
    ep = sip_endpoint
    secret = new_secret()
    csv = tmp_path / "phones.csv"
    csv.write_text("number,password,name\n" + "".join(f"{n},{p},Ext {n}\n" for n, p in PASSWORDS.items()))
    key, out = tmp_path / "backup.key", tmp_path / "backups"
    with ThreadedReceiver(LabWebhookReceiver(secret)) as sink:
        old = LifelineProcess(
            tmp_path / "old",
            {
                "sip": {"listen": "127.0.0.1", "children": 2, "transports": ["udp", "tcp", "tls"], "tls_port": 0},
                "cdr": {"interval_s": 0.5, "backoff_base_s": 0.2, "backoff_max_s": 1.0},
                "cdr.webhook": {"url": sink.url, "secret": secret, "timeout_s": 2.0},
            },
        )
        old.cli("extensions", "import", str(csv))
        store = Store(old.workdir / "data" / "lifeline.db")
        seed_records(store, SEEDED, ["webhook"])
        with store.write() as conn:
            conn.execute("UPDATE cdr_outbox SET state = 'delivered' WHERE cdr_seq <= ?", [ACKED])
        store.close()
        old.cli("mode", "survival")  # the outage: nothing is delivered while it lasts
        old.start()
        old_db = old.workdir / "data" / "lifeline.db"
        try:
            alice, bob = phone(ep, old, "1001", PASSWORDS["1001"]), phone(ep, old, "1002", PASSWORDS["1002"])
            assert alice.register() == 200 and bob.register() == 200
            talk(ep, alice, bob, caller_hangs_up=True)
            wait_until(
                lambda: query(old_db, "SELECT COUNT(*) FROM cdrs WHERE state = 'final'")[0][0] == SEEDED + 1,
                15,
                "the call's record",
                ep,
            )
            undelivered = {
                str(r[0])
                for r in query(
                    old_db, "SELECT c.id FROM cdrs c JOIN cdr_outbox o ON o.cdr_seq = c.seq WHERE o.state = 'pending'"
                )
            }
            assert len(undelivered) == SEEDED - ACKED + 1
            ep.reset()

            old.cli("backup", "key", str(key))
            made = old.cli("backup", "create", "--key-file", str(key), "--out", f"{out}/")  # while it runs
            assert f"{SEEDED - ACKED + 1} undelivered call record(s)" in made.stdout
            (backup,) = out.glob("*.llbackup")
            running = old.cli("backup", "restore", str(backup), "--key-file", str(key), "--replace", check=False)
            assert running.returncode == 1 and "the daemon is running" in running.stderr
        finally:
            old.stop()
        assert sink.records == {}  # the old box never got to deliver

        new = LifelineProcess(tmp_path / "new", {"sip": {"listen": "127.0.0.1", "children": 2}})
        other = tmp_path / "other.key"
        new.cli("backup", "key", str(other))
        wrong = new.cli("backup", "restore", str(backup), "--key-file", str(other), check=False)
        assert wrong.returncode == 1 and "wrong key" in wrong.stderr
        assert not (new.workdir / "data").exists()

        new.cli("backup", "restore", str(backup), "--key-file", str(key))
        for name in ("tls/lifeline.crt", "tls/lifeline.key"):  # phones that trust the old certificate still do
            assert (new.workdir / "data" / name).read_bytes() == (old.workdir / "data" / name).read_bytes()
        status = new.start()
        try:
            assert status["mode"]["mode"] == "survival" and status["sip"]["tls_port"]
            assert phone(ep, new, "1001", PASSWORDS["1001"]).register() == 200
            assert phone(ep, new, "1002", "not-bobs-password").register() in (401, 403)
            new.set_mode("normal")  # the cloud is back: the records go now
            new_db = new.workdir / "data" / "lifeline.db"
            wait_until(
                lambda: query(new_db, "SELECT COUNT(*) FROM cdr_outbox WHERE state != 'delivered'")[0][0] == 0,
                20,
                "every record delivered",
            )
        finally:
            new.stop()
        assert set(sink.records) == undelivered
        assert sink.receipts == len(undelivered)  # each once: none twice, none of those acked before
