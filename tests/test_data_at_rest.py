"""Data at rest: the data dir is 0750 and its files 0600, whichever command or process creates them first."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.fsmode import private_database, private_dir, private_file, write_private
from gateway.lab.daemon import LifelineProcess
from gateway.trunk.agent.model import MinutesLedger


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o002, 0o000], ids=["umask022", "umask002", "umask000"])
def loose_umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """The umask of whoever runs the first command: it must not decide who can read the data."""
    old = os.umask(request.param)
    yield int(request.param)
    os.umask(old)


def test_created_directories_and_files_are_private(tmp_path: Path, loose_umask: int) -> None:
    data = private_dir(tmp_path / "new" / "data")
    assert mode(data) == mode(tmp_path / "new") == 0o750
    db = private_database(data / "lifeline.db")
    assert mode(db) == 0o600 and db.stat().st_size == 0
    write_private(data / "ledger.json", "{}")
    assert mode(data / "ledger.json") == 0o600 and (data / "ledger.json").read_text() == "{}"
    assert not (data / "ledger.json.tmp").exists()


def test_what_an_older_version_left_open_is_tightened_and_stricter_modes_stay(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o777)
    data.chmod(0o777)
    for name in ("lifeline.db", "lifeline.db-wal", "lifeline.db-shm"):
        (data / name).write_text("")
        (data / name).chmod(0o666)
    private_database(data / "lifeline.db")
    assert mode(data) == 0o750
    assert [mode(data / n) for n in ("lifeline.db", "lifeline.db-wal", "lifeline.db-shm")] == [0o600] * 3
    data.chmod(0o700)
    (data / "key").write_text("x")
    (data / "key").chmod(0o400)
    private_file(data / "key")
    assert (mode(data), mode(data / "key")) == (0o700, 0o400)


def test_a_shared_directory_is_left_alone(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp: data_dir = "/tmp" must not take /tmp away from everybody
    private_dir(shared)
    assert mode(shared) == 0o1777


def test_the_agents_minutes_ledger_is_private(tmp_path: Path, loose_umask: int) -> None:
    ledger = MinutesLedger(tmp_path / "data" / "trunk-minutes.json")
    ledger.add(30)
    assert mode(tmp_path / "data" / "trunk-minutes.json") == 0o600 and mode(tmp_path / "data") == 0o750


def test_import_before_the_first_run_then_run_leave_everything_private(tmp_path: Path) -> None:
    # The README's order: `extensions import` creates the data dir and the store, then `run`.
    old = os.umask(0o022)
    try:
        daemon = LifelineProcess(tmp_path / "work", {})
        csv = tmp_path / "phones.csv"
        csv.write_text("number,password\n1001,alice-at-rest-1001\n")
        daemon.cli("extensions", "import", str(csv))
        data = tmp_path / "work" / "data"
        assert mode(data) == 0o750
        assert {p.name: mode(p) for p in data.iterdir()} == {p.name: 0o600 for p in data.iterdir()}
        assert (data / "lifeline.db").exists()
        daemon.start()
        try:
            files = {p.name: mode(p) for p in data.iterdir() if p.is_file()}
            assert {"lifeline.db", "lifeline.db.acc"} <= set(files)
            assert files == dict.fromkeys(files, 0o600), files
            assert mode(tmp_path / "work" / "run") == 0o750
            assert mode(tmp_path / "work" / "run" / "kamailio.cfg") == 0o600
        finally:
            assert daemon.stop() == 0
        files = {p.name: mode(p) for p in data.iterdir() if p.is_file()}
        assert files == dict.fromkeys(files, 0o600), files
    finally:
        os.umask(old)
