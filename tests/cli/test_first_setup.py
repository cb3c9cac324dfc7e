"""What a newcomer meets first, through the real CLI: CSV import, short passwords, pipes, `cdr list`, `status`."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.cli.main import since_line
from gateway.lab.daemon import LifelineProcess
from gateway.store import Store
from tests.cdr.helpers import add_record

SECRET = "Sup3rSecretPw"


def lifeline_cmd(daemon: LifelineProcess, *args: str) -> list[str]:
    return [sys.executable, "-m", "gateway", "--config", str(daemon.config_path), *args]


def listed(daemon: LifelineProcess) -> list[dict[str, Any]]:
    return list(json.loads(daemon.cli("extensions", "list", "--json").stdout))


def test_import_without_header_is_refused_and_never_echoes_the_first_row(tmp_path: Path) -> None:
    daemon = LifelineProcess(tmp_path, {})
    phones = tmp_path / "phones.csv"
    phones.write_text(f"1001,{SECRET},Alice\n1002,{SECRET}2,Bob\n")
    done = daemon.cli("extensions", "import", str(phones), check=False)
    assert done.returncode == 1
    assert "line 1: no header row" in done.stderr and "--no-header" in done.stderr
    assert SECRET not in done.stdout + done.stderr and "Alice" not in done.stderr
    assert listed(daemon) == []


def test_import_with_no_header_reads_the_documented_order_and_warns_about_short_passwords(tmp_path: Path) -> None:
    daemon = LifelineProcess(tmp_path, {"cloud": {"realm": "cloud.test"}})
    phones = tmp_path / "phones.csv"
    phones.write_text(f"1001,{SECRET},Alice,u1001\n1002,Ab3!x9,Bob\n")
    done = daemon.cli("extensions", "import", "--no-header", str(phones))
    assert "imported 2 extension(s)" in done.stdout
    assert done.stderr.strip().splitlines() == [
        "lifeline: warning: line 2: password shorter than 8 characters (kept: the cloud PBX sets the policy)"
    ]
    rows = {r["number"]: r for r in listed(daemon)}
    assert (rows["1001"]["auth_user"], rows["1001"]["display_name"], rows["1002"]["realm"]) == (
        "u1001",
        "Alice",
        "cloud.test",
    )
    assert "Ab3!x9" not in done.stdout + done.stderr


def test_mirror_sync_and_status_warn_about_a_short_password_without_showing_it(tmp_path: Path) -> None:
    phones = tmp_path / "phones.csv"
    phones.write_text("number,password\n1001,Ab3!x9\n1002,long-enough-1002\n")
    daemon = LifelineProcess(tmp_path, {"mirror": {"source": "file", "file": str(phones)}})
    done = daemon.cli("mirror", "sync")  # no daemon running: applied to the store directly
    assert "2 added" in done.stdout
    warning = "1 extension(s) have a password shorter than 8 characters (mirrored: the cloud PBX sets the policy): 1001"
    assert warning in done.stderr
    status = daemon.cli("mirror", "status")
    assert warning in status.stdout
    assert "Ab3!x9" not in done.stdout + done.stderr + status.stdout + status.stderr


def test_a_bad_row_names_row_and_column_and_no_value(tmp_path: Path) -> None:
    daemon = LifelineProcess(tmp_path, {})
    phones = tmp_path / "phones.csv"
    phones.write_text(f"number,password,name\n1001,good-secret,Alice\n{SECRET},1002,Bob\n")  # shifted columns
    done = daemon.cli("extensions", "import", str(phones), check=False)
    assert done.returncode == 1
    assert "line 3: column 1 (number): String should match pattern" in done.stderr
    assert SECRET not in done.stdout + done.stderr and "good-secret" not in done.stderr
    assert listed(daemon) == []


def test_a_headerless_mirror_file_fails_the_sync_without_the_secret_in_log_status_or_store(tmp_path: Path) -> None:
    phones = tmp_path / "phones.csv"
    phones.write_text(f"1001,{SECRET}\n")
    daemon = LifelineProcess(tmp_path, {"mirror": {"source": "file", "file": str(phones)}})
    daemon.start()
    try:
        # The first sync runs as the daemon starts; a manual one waits for its own result.
        done = daemon.cli("mirror", "sync", check=False)
        assert done.returncode == 1 and "line 1: no header row" in done.stderr
        status = daemon.cli("mirror", "status", "--json").stdout
        assert "no header row" in json.loads(status)["last_error"]
    finally:
        daemon.stop()
    with contextlib.closing(sqlite3.connect(tmp_path / "data" / "lifeline.db")) as db:
        dump = "\n".join(db.iterdump())
    for text in (done.stdout + done.stderr, status, daemon.log_path.read_text(), dump):
        assert SECRET not in text


def many_records(store: Store, count: int) -> None:
    """count call records (copies of one), in one transaction."""
    seq = add_record(store)
    with store.write() as conn:
        cursor = conn.execute("SELECT * FROM cdrs WHERE seq = ?", [seq])
        row = dict(zip([d[0] for d in cursor.description], cursor.fetchone(), strict=True))
        names = [n for n in row if n != "seq"]
        conn.executemany(
            f"INSERT INTO cdrs ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})",
            [[f"copy-{i}" if n in ("id", "call_id") else row[n] for n in names] for i in range(count - 1)],
        )


@pytest.fixture
def with_records(tmp_path: Path) -> LifelineProcess:
    daemon = LifelineProcess(tmp_path, {})
    store = Store(tmp_path / "data" / "lifeline.db")
    many_records(store, 3000)  # far more output than a pipe buffers: the writer must meet the closed end
    store.close()
    return daemon


@pytest.mark.parametrize(
    "args",
    [("status",), ("cdr", "list", "--limit", "0"), ("cdr", "export"), ("extensions", "list"), ("mirror", "status")],
)
def test_a_pipe_closed_before_the_first_byte_ends_the_command_quietly(
    with_records: LifelineProcess, args: tuple[str, ...]
) -> None:
    read, write = os.pipe()
    os.close(read)  # the reader is gone before anything is written: every write meets EPIPE
    try:
        done = subprocess.run(
            lifeline_cmd(with_records, *args), stdout=write, stderr=subprocess.PIPE, text=True, timeout=60
        )
    finally:
        os.close(write)
    assert done.stderr == ""
    assert done.returncode == 141  # 128 + SIGPIPE, as a shell reports a command a closed pipe stopped


def test_cdr_list_piped_into_head_ends_quietly(with_records: LifelineProcess) -> None:
    lifeline = subprocess.Popen(
        lifeline_cmd(with_records, "cdr", "list", "--limit", "0"), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert lifeline.stdout is not None and lifeline.stderr is not None
    head = subprocess.run(["head", "-n", "1"], stdin=lifeline.stdout, capture_output=True, text=True, timeout=60)
    lifeline.stdout.close()  # head holds the only reading end: it closes after one line
    errors = lifeline.stderr.read().decode()
    assert lifeline.wait(60) == 141
    assert errors == "" and head.stdout.count("\n") == 1 and "answered" in head.stdout


def test_cdr_list_says_how_many_more_records_there_are(tmp_path: Path) -> None:
    daemon = LifelineProcess(tmp_path, {})
    store = Store(tmp_path / "data" / "lifeline.db")
    many_records(store, 5)
    store.close()
    text = daemon.cli("cdr", "list", "--limit", "2").stdout.splitlines()
    assert text[-2:] == ["2 record(s)", "3 more (older) record(s) not shown: --limit 5 (or 0) shows them all"]
    assert len(text) == 4
    everything = daemon.cli("cdr", "list", "--limit", "0").stdout.splitlines()
    assert len(everything) == 6 and everything[-1] == "5 record(s)"
    assert daemon.cli("cdr", "list").stdout.splitlines()[-1] == "5 record(s)"  # all of them: no "more" line
    as_json = daemon.cli("cdr", "list", "--json", "--limit", "2")
    assert len(json.loads(as_json.stdout)) == 2 and "3 more (older) record(s)" in as_json.stderr
    refused = daemon.cli("cdr", "list", "--limit", "-1", check=False)
    assert refused.returncode == 2 and "0 or more" in refused.stderr


def test_status_says_when_the_daemon_restarted_after_the_mode_began() -> None:
    mode = {"since": time.time() - 3 * 3600 - 10, "reason": "first start"}
    assert since_line(mode, up_s=300) == "since:         3 h ago — first start (daemon restarted 5 min ago)"
    assert since_line({**mode, "since": time.time() - 301}, up_s=300) == "since:         5 min ago — first start"
    assert since_line(mode, up_s=None) == "since:         3 h ago — first start"  # no daemon running


def test_status_after_a_real_restart_keeps_the_first_start(tmp_path: Path) -> None:
    daemon = LifelineProcess(tmp_path, {})
    first = daemon.start()
    daemon.stop()
    again = daemon.start()
    try:
        assert again["mode"]["since"] == first["mode"]["since"] and again["mode"]["reason"] == "first start"
        assert again["uptime_s"] < time.time() - again["mode"]["since"]
    finally:
        daemon.stop()
