"""`lifeline backup`: what goes in, what comes back, and every way a restore must refuse (no daemon needed)."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import ssl
import stat
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web

from gateway.backup import archive, crypto, upload
from gateway.backup.restore import carry_paths
from gateway.cdr.acc import acc_path
from gateway.cdr.capture import CURSOR_KEY
from gateway.cli import backup_cmd
from gateway.cli.main import main
from gateway.config import load
from gateway.errors import BackupError
from gateway.ha.key import read_key, write_new_key
from gateway.lab.daemon import to_toml
from gateway.mirror.records import Extension
from gateway.sip.accounting import ACC_TABLE
from gateway.sip.render import free_port
from gateway.store import Store
from tests.cdr.helpers import add_record, queue
from tests.served import served_in_thread

PASSWORDS = {"1001": "alice-clear-pass-1001", "1002": "bob-clear-pass-1002"}
REALM = "branch.example"


@dataclass
class Install:
    """A config file and its data dir, as a box has them."""

    root: Path
    config_path: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    def cli(self, *args: str) -> int:
        return main(["--config", str(self.config_path), *args])


def make_install(root: Path, extra: dict[str, dict[str, Any]] | None = None) -> Install:
    root.mkdir(parents=True, exist_ok=True)
    config = {"paths": {"data_dir": str(root / "data"), "run_dir": str(root / "run")}, **(extra or {})}
    path = root / "lifeline.toml"
    path.write_text("# the operator's own comment\n" + to_toml(config))
    return Install(root, path)


@dataclass
class Seeded:
    pending: set[str]  # record ids no sink has acked: they must travel
    delivered: set[str]  # acked by every sink: left out
    events_kept: int  # acc rows above the cursor


@pytest.fixture
def old(tmp_path: Path) -> Install:
    """A used install: extensions, records in every delivery state, unfolded call events, keys, a named file."""
    install = make_install(
        tmp_path / "old",
        {
            "cloud": {"realm": REALM},
            "alerts": {"webhook_url": "https://alerts.example/hook", "webhook_secret_file": str(tmp_path / "whsec")},
        },
    )
    (tmp_path / "whsec").write_text("whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=\n")
    return install


def seed(install: Install) -> Seeded:
    store = Store(install.data / "lifeline.db")
    try:
        store.replace_extensions(
            [Extension.from_password(number=n, auth_user=n, realm=REALM, password=p) for n, p in PASSWORDS.items()],
            source="import:phones.csv",
        )
        seqs = {name: add_record(store, id=f"0190-{name}") for name in ("p1", "p2", "p3", "d1", "d2", "never")}
        queue(store, "webhook", [seqs["p1"], seqs["p2"], seqs["d1"], seqs["d2"]])
        queue(store, "csv", [seqs["p1"], seqs["p3"], seqs["d1"], seqs["d2"]])
        with store.write() as conn:
            # p1: delivered to one sink of two (still undelivered); d1, d2: at every sink.
            conn.execute("UPDATE cdr_outbox SET state = 'delivered' WHERE cdr_seq IN (?, ?)", [seqs["d1"], seqs["d2"]])
            conn.execute("UPDATE cdr_outbox SET state = 'delivered' WHERE cdr_seq = ? AND sink = 'csv'", [seqs["p1"]])
        store.set_state(CURSOR_KEY, 2)
    finally:
        store.close()
    with sqlite3.connect(acc_path(install.data / "lifeline.db")) as acc:
        acc.execute(ACC_TABLE)
        acc.executemany(
            "INSERT INTO acc (method, callid, sip_code, time_attr) VALUES ('INVITE', ?, '200', 1.0)",
            [(f"call-{n}",) for n in range(5)],
        )
    (install.data / "sip-route.key").write_text("ab" * 32 + "\n")
    (install.data / "tls").mkdir()
    (install.data / "tls" / "lifeline.crt").write_text("-----BEGIN CERTIFICATE-----\nold\n")
    (install.data / "tls" / "lifeline.key").write_text("-----BEGIN PRIVATE KEY-----\nold\n")
    return Seeded({"0190-p1", "0190-p2", "0190-p3", "0190-never"}, {"0190-d1", "0190-d2"}, events_kept=3)


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "backup.key"
    crypto.write_new_key(path)
    return path


def create(install: Install, out: Path, *secret: str) -> Path:
    assert install.cli("backup", "create", "--out", f"{out}/", *secret) == 0
    (made,) = out.glob("*.llbackup")
    return made


def seeded_backup(install: Install, key: Path, tmp_path: Path) -> Path:
    """The install seeded, then backed up with the key file into tmp_path/out; the backup's path."""
    seed(install)
    return create(install, tmp_path / "out", "--key-file", str(key))


def numbers(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT number FROM extensions ORDER BY number")]


def records(db: Path) -> dict[str, list[tuple[str, str]]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT c.id, o.sink, o.state FROM cdrs c LEFT JOIN cdr_outbox o ON o.cdr_seq = c.seq ORDER BY c.id, o.sink"
        ).fetchall()
    found: dict[str, list[tuple[str, str]]] = {}
    for rid, sink, state in rows:
        found.setdefault(rid, [])
        if sink is not None:
            found[rid].append((sink, state))
    return found


def test_restore_onto_a_fresh_install_brings_everything_back(old: Install, key: Path, tmp_path: Path) -> None:
    seeded = seed(old)
    before = records(old.data / "lifeline.db")
    made = create(old, tmp_path / "out", "--key-file", str(key))
    assert stat.S_IMODE(made.stat().st_mode) == 0o600
    new = make_install(tmp_path / "new")

    assert new.cli("backup", "restore", str(made), "--key-file", str(key)) == 0

    db = new.data / "lifeline.db"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600 and stat.S_IMODE(new.data.stat().st_mode) == 0o750
    restored = Store(db)
    try:
        old_store = Store(old.data / "lifeline.db")
        assert restored.mirror_rows("import:phones.csv") == old_store.mirror_rows("import:phones.csv")
        old_store.close()
    finally:
        restored.close()
    # Only what no sink has in full travels, each with its own outbox state.
    assert records(db) == {rid: rows for rid, rows in before.items() if rid in seeded.pending}
    with sqlite3.connect(acc_path(db)) as acc:
        assert [r[0] for r in acc.execute("SELECT callid FROM acc ORDER BY id")] == ["call-2", "call-3", "call-4"]
    for name in ("sip-route.key", "tls/lifeline.crt", "tls/lifeline.key"):
        assert (new.data / name).read_bytes() == (old.data / name).read_bytes()
        assert stat.S_IMODE((new.data / name).stat().st_mode) == 0o600
    config, _ = load(new.config_path)
    text = new.config_path.read_text()
    assert config.data_dir == new.data and config.run_dir == new.root / "run"  # this install's paths
    assert config.alerts.webhook_url == "https://alerts.example/hook" and config.cloud.realm == REALM
    assert "# the operator's own comment" in text
    assert stat.S_IMODE(new.config_path.stat().st_mode) == 0o600


def test_a_pair_box_gets_its_pair_key_back_private(key: Path, tmp_path: Path) -> None:
    pair_key = tmp_path / "pair.key"
    write_new_key(pair_key)
    ha = {"enabled": True, "peer": "192.0.2.72", "virtual_ip": "192.0.2.70/24", "key_file": str(pair_key)}
    old = make_install(tmp_path / "old", {"cloud": {"realm": REALM}, "ha": ha})
    made = seeded_backup(old, key, tmp_path)
    kept = pair_key.read_bytes()
    pair_key.unlink()  # the box's disk was lost; its peer still signs routes with this key

    new = make_install(tmp_path / "new")
    assert new.cli("backup", "restore", str(made), "--key-file", str(key)) == 0

    assert pair_key.read_bytes() == kept and stat.S_IMODE(pair_key.stat().st_mode) == 0o600
    assert len(read_key(pair_key)) == 32  # a pair key the daemon accepts (private, well formed)


def test_the_file_holds_no_clear_password_and_hides_everything(old: Install, key: Path, tmp_path: Path) -> None:
    made = seeded_backup(old, key, tmp_path)
    blob = made.read_bytes()
    for secret in (*PASSWORDS.values(), "whsec_", REALM, "1001"):
        assert secret.encode() not in blob
    _, plaintext = crypto.unseal(blob, crypto.read_key_file(key), "test")
    contents = archive.open_contents(plaintext, "test")
    everything = b"".join(contents.members.values())
    assert not any(p.encode() in everything for p in PASSWORDS.values())
    assert b"whsec_c2VjcmV0" in everything  # the named file travels, inside the encryption only


def test_wrong_key_is_told_and_nothing_is_written(
    old: Install, key: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = seeded_backup(old, key, tmp_path)
    other = tmp_path / "other.key"
    crypto.write_new_key(other)
    new = make_install(tmp_path / "new")
    config_before = new.config_path.read_text()
    capsys.readouterr()

    assert new.cli("backup", "restore", str(made), "--key-file", str(other)) == 1

    assert "wrong key" in capsys.readouterr().err
    assert not new.data.exists() and new.config_path.read_text() == config_before
    assert new.cli("backup", "restore", str(made), "--passphrase-file", str(write_secret(tmp_path))) == 1
    assert "made with a key file" in capsys.readouterr().err


def write_secret(tmp_path: Path, text: str = "correct horse battery staple") -> Path:
    path = tmp_path / "passphrase"
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("where", ["header", "body", "tag", "truncated"])
def test_a_changed_file_is_refused(
    where: str, old: Install, key: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = seeded_backup(old, key, tmp_path)
    blob = bytearray(made.read_bytes())
    header_end = len(crypto.MAGIC) + 4 + struct.unpack(">I", blob[len(crypto.MAGIC) : len(crypto.MAGIC) + 4])[0]
    if where == "header":
        at = blob.index(b'"created": "') + len(b'"created": "')
        blob[at] = ord("1") if blob[at] != ord("1") else ord("2")  # the year: still a valid header
    elif where == "body":
        blob[(header_end + len(blob)) // 2] ^= 0x01
    elif where == "tag":
        blob[-1] ^= 0x80
    else:
        del blob[-100:]
    made.write_bytes(bytes(blob))
    new = make_install(tmp_path / "new")
    capsys.readouterr()

    assert new.cli("backup", "restore", str(made), "--key-file", str(key)) == 1

    assert "changed or damaged since it was written" in capsys.readouterr().err
    assert not new.data.exists()


def test_not_a_backup_and_crafted_headers_are_refused(key: Path) -> None:
    secret = crypto.read_key_file(key)
    with pytest.raises(BackupError, match="not a Lifeline backup"):
        crypto.unseal(b"SQLite format 3\x00" + bytes(100), secret, "x")
    sealed = crypto.seal(b"hello", crypto.passphrase("a long enough passphrase", "t"))
    header, start = crypto.read_header(sealed, "x")
    for change in ({"n": 2**30}, {"n": 1000}, {"r": 10**6}):
        crafted = {**header, "scrypt": {**header["scrypt"], **change}}
        head = json.dumps(crafted).encode()
        blob = crypto.MAGIC + struct.pack(">I", len(head)) + head + sealed[start:]
        with pytest.raises(BackupError, match="cannot read"):  # refused before scrypt runs
            crypto.unseal(blob, crypto.passphrase("a long enough passphrase", "t"), "x")
    assert crypto.unseal(sealed, crypto.passphrase("a long enough passphrase", "t"), "x")[1] == b"hello"


def test_passphrase_backups_round_trip_and_refuse_a_short_or_wrong_one(
    old: Install, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(old)
    short = write_secret(tmp_path, "too short")
    assert old.cli("backup", "create", "--out", str(tmp_path / "x.llbackup"), "--passphrase-file", str(short)) == 1
    assert "at least 12 characters" in capsys.readouterr().err
    assert not (tmp_path / "x.llbackup").exists()
    good = write_secret(tmp_path)
    made = create(old, tmp_path / "out", "--passphrase-file", str(good))
    new = make_install(tmp_path / "new")
    wrong = tmp_path / "wrong"
    wrong.write_text("correct horse battery stapler\n")
    wrong.chmod(0o600)
    assert new.cli("backup", "restore", str(made), "--passphrase-file", str(wrong)) == 1
    assert "wrong passphrase" in capsys.readouterr().err
    assert new.cli("backup", "restore", str(made), "--passphrase-file", str(good)) == 0
    assert numbers(new.data / "lifeline.db") == ["1001", "1002"]


def test_key_files_are_private_and_never_replaced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    install = make_install(tmp_path / "box")
    path = tmp_path / "k"
    assert install.cli("backup", "key", str(path)) == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_text()
    assert install.cli("backup", "key", str(path)) == 1
    assert "never overwritten" in capsys.readouterr().err and path.read_text() == first
    assert len(crypto.read_key_file(path).key or b"") == 32
    path.chmod(0o640)
    with pytest.raises(BackupError, match="readable by others"):
        crypto.read_key_file(path)
    capsys.readouterr()
    assert install.cli("backup", "key", "-") == 0
    printed = capsys.readouterr().out
    assert printed != first and crypto.KEY_PREFIX in printed


def test_a_used_install_is_restored_over_only_with_replace_and_kept_aside(
    old: Install, key: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = seeded_backup(old, key, tmp_path)
    new = make_install(tmp_path / "new")
    store = Store(new.data / "lifeline.db")
    store.replace_extensions(
        [Extension.from_password(number="2001", auth_user="2001", realm="r", password="x" * 9)], "x"
    )
    store.close()
    capsys.readouterr()

    assert new.cli("backup", "restore", str(made), "--key-file", str(key)) == 1
    assert "in use (1 extension(s)" in capsys.readouterr().err
    assert numbers(new.data / "lifeline.db") == ["2001"]

    assert new.cli("backup", "restore", str(made), "--key-file", str(key), "--replace") == 0
    (aside,) = new.data.glob("before-restore-*")
    assert numbers(aside / "lifeline.db") == ["2001"]
    assert numbers(new.data / "lifeline.db") == ["1001", "1002"]


@contextmanager
def fake_daemon(socket: Path) -> Iterator[None]:
    """Something answering on an API socket, in a thread of its own."""

    async def status(_request: web.Request) -> web.Response:
        return web.json_response({"pid": 4242})

    app = web.Application()
    app.router.add_get("/api/v1/status", status)
    socket.parent.mkdir(parents=True, exist_ok=True)
    with served_in_thread(app, lambda runner: web.UnixSite(runner, str(socket))):
        yield


def test_restore_is_refused_while_a_daemon_runs(
    old: Install, key: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = seeded_backup(old, key, tmp_path)
    new = make_install(tmp_path / "new")
    with fake_daemon(new.root / "run" / "lifeline.sock"):
        capsys.readouterr()
        assert new.cli("backup", "restore", str(made), "--key-file", str(key)) == 1
    assert "the daemon is running (pid 4242)" in capsys.readouterr().err
    assert not new.data.exists()


def test_scheduled_backups_go_to_the_configured_directory_and_old_ones_are_pruned(
    old: Install, key: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(old)
    directory = tmp_path / "backups"
    with old.config_path.open("a") as toml:
        toml.write(f'[backup]\nkey_file = "{key}"\ndirectory = "{directory}"\nkeep = 2\n')
    directory.mkdir()
    host = backup_cmd.file_name().rsplit("-", 1)[1]
    stale = [directory / f"lifeline-2025010{n}T000000Z-{host}" for n in range(1, 4)]
    for path in stale:
        path.write_bytes(b"old")
    foreign = directory / "lifeline-20250101T000000Z-otherbox.llbackup"
    foreign.write_bytes(b"another box's")

    assert old.cli("backup", "create") == 0

    assert "backup written" in capsys.readouterr().out
    left = sorted(p.name for p in directory.iterdir())
    assert foreign.name in left and stale[-1].name in left and len(left) == 3
    assert stat.S_IMODE(directory.stat().st_mode) == 0o750
    capsys.readouterr()
    assert make_install(tmp_path / "nothing").cli("backup", "create", "--key-file", str(key)) == 1
    assert "no destination" in capsys.readouterr().err


def test_a_missing_store_is_a_clear_error(key: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert make_install(tmp_path / "empty").cli("backup", "create", "--key-file", str(key), "--out", "x") == 1
    assert "no store to back up" in capsys.readouterr().err


def test_paths_are_carried_only_in_a_form_that_parses_the_same() -> None:
    text = '[sip]\nport = 5070\n\n[paths]\ndata_dir = "/old"  # comment\n\n[cdr]\nretention_days = 9\n'
    carried = carry_paths(text, {"data_dir": "/new"})
    assert "port = 5070" in carried and "retention_days = 9" in carried and '"/old"' not in carried.split("#")[0]
    assert carry_paths(text, {"data_dir": "/old"}) == text
    assert "[paths]" not in carry_paths(text, {})
    with pytest.raises(BackupError, match="use a \\[paths\\] table"):
        carry_paths('paths = { data_dir = "/old" }\n', {"data_dir": "/new"})


# --------------------------------------------------------------------------- HTTPS target


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


class BackupServer:
    """An HTTPS server on loopback that keeps what is PUT to it (token checked)."""

    def __init__(self, ca: trustme.CA, token: str) -> None:
        self.token = token
        self.received: dict[str, bytes] = {}
        self.port = free_port("127.0.0.1")
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(self.context)
        self.app = web.Application(client_max_size=1 << 26)
        self.app.router.add_put("/{tail:.*}", self._put)

    async def _put(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.Response(status=401)
        self.received[request.path] = await request.read()
        return web.Response(status=201)

    def site(self, runner: web.AppRunner) -> web.TCPSite:
        return web.TCPSite(runner, "127.0.0.1", self.port, ssl_context=self.context)


@pytest.fixture
def server(ca: trustme.CA) -> Iterator[BackupServer]:
    running = BackupServer(ca, token=base64.b64encode(os.urandom(12)).decode())
    with served_in_thread(running.app, running.site):  # in a thread of its own
        yield running


def test_backup_is_put_to_an_https_target_with_its_token(
    old: Install, key: Path, tmp_path: Path, ca: trustme.CA, server: BackupServer
) -> None:
    seed(old)
    ca_file, token_file = tmp_path / "ca.pem", tmp_path / "token"
    ca.cert_pem.write_to_path(str(ca_file))
    token_file.write_text(server.token + "\n")
    with old.config_path.open("a") as toml:
        toml.write(
            f'[backup]\nkey_file = "{key}"\nurl = "https://127.0.0.1:{server.port}/box1/"\n'
            f'token_file = "{token_file}"\nca_file = "{ca_file}"\n'
        )

    assert old.cli("backup", "create") == 0

    ((path, blob),) = server.received.items()
    assert path.startswith("/box1/lifeline-") and path.endswith(".llbackup")
    _, plaintext = crypto.unseal(blob, crypto.read_key_file(key), "put")
    assert archive.open_contents(plaintext, "put").counts["extensions"] == 2


async def test_an_untrusted_or_refusing_target_is_a_clear_error(
    server: BackupServer, ca: trustme.CA, tmp_path: Path
) -> None:
    url = f"https://127.0.0.1:{server.port}/b"
    with pytest.raises(BackupError, match="TLS certificate not trusted"):
        await upload.put(url, b"x", token=server.token, ca_file=None, timeout_s=5)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with pytest.raises(BackupError, match="HTTP 401"):
        await upload.put(url, b"x", token="wrong", ca_file=ca_file, timeout_s=5)
    with pytest.raises(BackupError, match="HTTPS only"):
        await upload.put(f"http://127.0.0.1:{server.port}/b", b"x", token=None, ca_file=None, timeout_s=5)
    assert server.received == {}
