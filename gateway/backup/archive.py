"""What a backup holds, taken consistently from a running or stopped install, and put back onto a fresh one.

A backup is a gzip'd tar (then sealed by gateway.backup.crypto) of:
  manifest.json            what is inside, with a SHA-256 per member
  config/lifeline.toml     the config file in effect, as written
  data/lifeline.db         the store (SQLite online backup: consistent while the daemon writes), less the
                           call records every sink has acked and the alerts already delivered
  data/lifeline.db.acc     Kamailio's call events the daemon had not folded yet (taken after the store,
                           so each event is either in a record of the store copy or still here, never both)
  data/…                   the route key, Lifeline's own TLS certificate and key, the trunk's minutes ledger
  files/N                  files the config names: the operator's TLS certificate and key, CA bundles,
                           the webhook secret, SIM PIN files
Never a clear SIP password: the store holds HA1 digests only, and a directory mirror's `file` (which
may hold clear passwords) is left out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import socket
import sqlite3
import tarfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gateway import __version__
from gateway import config as config_mod
from gateway.cdr.acc import acc_path
from gateway.cdr.capture import CURSOR_KEY
from gateway.config import Config
from gateway.errors import BackupError, LifelineError
from gateway.fsmode import SQLITE_SUFFIXES, private_database, private_dir, write_private
from gateway.store import SCHEMA_VERSION, Store

FORMAT = 1
STORE = "lifeline.db"
ACC = STORE + ".acc"
# Files of the data dir besides the two databases (gateway.sip.render, gateway.sip.tls, gateway.trunk.agent).
DATA_FILES = ("sip-route.key", "trunk-minutes.json", "tls/lifeline.crt", "tls/lifeline.key")
MAX_MEMBER = 1 << 31
# Store tables a backup must have to be one of ours.
REQUIRED_TABLES = frozenset({"extensions", "cdrs", "cdr_outbox", "state"})

# Records every sink acked are at the sinks: a backup carries only what is not safe anywhere else yet.
# Unanswered ring-group legs (`merged`) go with the record they were folded into.
PRUNE_STORE = (
    "DELETE FROM cdrs WHERE state = 'final' AND seq IN"
    " (SELECT cdr_seq FROM cdr_outbox GROUP BY cdr_seq HAVING SUM(state != 'delivered') = 0)",
    "DELETE FROM cdrs WHERE state = 'merged' AND (trunk_call IS NULL OR trunk_call NOT IN"
    " (SELECT trunk_call FROM cdrs WHERE state != 'merged' AND trunk_call IS NOT NULL))",
    "DELETE FROM cdr_outbox WHERE cdr_seq NOT IN (SELECT seq FROM cdrs)",
    "DELETE FROM alerts WHERE delivered_at IS NOT NULL",
)


@dataclasses.dataclass(frozen=True)
class Contents:
    """A backup opened and checked: its manifest and members by name."""

    manifest: dict[str, Any]
    members: dict[str, bytes]

    @property
    def counts(self) -> dict[str, int]:
        """Extensions, undelivered records and the like, as counted when it was made."""
        return dict(self.manifest.get("counts", {}))


@dataclasses.dataclass
class RestoreReport:
    """What a restore wrote, and where the files it replaced went."""

    data_dir: Path
    config_path: Path | None
    counts: dict[str, int]
    written: list[Path] = dataclasses.field(default_factory=list)
    moved_aside: Path | None = None
    replaced_files: list[Path] = dataclasses.field(default_factory=list)


def referenced_files(config: Config) -> list[tuple[str, Path]]:
    """(config key, path) of every file the config names that a restore needs; a mirror file is not one."""
    found: list[tuple[str, Path | None]] = [
        ("sip.tls_certificate", config.sip.tls_certificate),
        ("sip.tls_private_key", config.sip.tls_private_key),
        ("alerts.webhook_secret_file", config.alerts.webhook_secret_file),
        ("alerts.webhook_ca_file", config.alerts.webhook_ca_file),
        ("health.api_ca_file", config.health.api_ca_file),
        ("cloud.ca_file", config.cloud.ca_file),
        ("mirror.ca_file", config.mirror.ca_file),
    ]
    found += [(f"trunk.modems[{m.name}].sim_pin_file", m.sim_pin_file) for m in config.trunk.modems]
    return [(key, path) for key, path in found if path is not None]


# --------------------------------------------------------------------------- making one


def _rows(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> int:
    try:
        return int(conn.execute(sql, params).fetchone()[0])
    except sqlite3.OperationalError:  # a table an older store does not have yet
        return 0


@contextlib.contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection]:
    # Read-only: never checkpoints or truncates a WAL that the daemon or Kamailio is writing.
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        conn.execute("PRAGMA busy_timeout=5000")
        yield conn
    finally:
        conn.close()


def _snapshot(path: Path, prune: tuple[tuple[str, tuple[Any, ...]], ...] = ()) -> tuple[bytes, sqlite3.Connection]:
    """A consistent copy of a live database in memory, pruned and vacuumed (no deleted rows left in free pages)."""
    memory = sqlite3.connect(":memory:")
    try:
        with _read_only(path) as source:
            source.backup(memory)
        for sql, params in prune:
            memory.execute(sql, params)
        memory.commit()
        memory.execute("VACUUM")
        return memory.serialize(), memory
    except BaseException:
        memory.close()
        raise


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def collect(config: Config, config_path: Path | None) -> tuple[bytes, dict[str, Any]]:
    """The plaintext of a backup of this install, and its manifest; blocking (run it off an event loop)."""
    db = config.db_path
    if not db.is_file():
        raise BackupError(f"{db}: no store to back up (no extension imported, the daemon never started)")
    members: dict[str, bytes] = {}
    try:
        store, memory = _snapshot(db, tuple((sql, ()) for sql in PRUNE_STORE))
        with contextlib.closing(memory):
            cursor_row = memory.execute("SELECT value FROM state WHERE key = ?", [CURSOR_KEY]).fetchone()
            cursor = int(json.loads(cursor_row[0])) if cursor_row else 0
            counts = {
                "extensions": _rows(memory, "SELECT COUNT(*) FROM extensions"),
                "ring_groups": _rows(memory, "SELECT COUNT(*) FROM ring_groups"),
                "records": _rows(memory, "SELECT COUNT(*) FROM cdrs WHERE state != 'merged'"),
                "pending_deliveries": _rows(memory, "SELECT COUNT(*) FROM cdr_outbox WHERE state = 'pending'"),
                "pending_alerts": _rows(memory, "SELECT COUNT(*) FROM alerts"),
            }
        members[f"data/{STORE}"] = store
        acc = acc_path(db)
        if acc.is_file():
            # After the store: an event folded in between is still here, above the copy's cursor.
            events, memory = _snapshot(acc, (("DELETE FROM acc WHERE id <= ?", (cursor,)),))
            with contextlib.closing(memory):
                counts["call_events"] = _rows(memory, "SELECT COUNT(*) FROM acc")
            members[f"data/{ACC}"] = events
    except (sqlite3.Error, ValueError) as err:
        raise BackupError(f"{db}: cannot copy the store: {err}") from err
    try:
        for name in DATA_FILES:
            path = config.data_dir / name
            if path.is_file():
                members[f"data/{name}"] = path.read_bytes()
        if config_path is not None:
            members["config/lifeline.toml"] = config_path.read_bytes()
    except OSError as err:
        raise BackupError(f"cannot read {err.filename}: {err.strerror}") from err
    files: list[dict[str, Any]] = []
    missing: list[str] = []
    for key, path in referenced_files(config):
        try:
            data = path.read_bytes()
        except OSError as err:
            missing.append(f"{key} = '{path}': {err.strerror}")
            continue
        name = f"files/{len(files)}"
        members[name] = data
        files.append({"name": name, "key": key, "path": str(path), "mode": path.stat().st_mode & 0o644})
    manifest = {
        "format": FORMAT,
        "lifeline": __version__,
        "schema": SCHEMA_VERSION,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "counts": counts,
        "referenced": files,
        "missing": missing,
        "members": {name: {"sha256": _sha256(data), "size": len(data)} for name, data in members.items()},
    }
    return _tar({"manifest.json": json.dumps(manifest, indent=1).encode(), **members}), manifest


def _tar(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    now = dt.datetime.now(dt.UTC).timestamp()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o600, int(now)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


# --------------------------------------------------------------------------- reading one


def open_contents(plaintext: bytes, where: str) -> Contents:
    """The members of a decrypted backup, each checked against the manifest."""
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(plaintext), mode="r:gz") as tar:
            for info in tar:
                # Read by name only, never extracted: a member's path never becomes a path on disk.
                if not info.isfile() or info.size > MAX_MEMBER or info.name in members:
                    raise BackupError(f"{where}: unexpected member {info.name!r} in the archive")
                handle = tar.extractfile(info)
                members[info.name] = handle.read() if handle is not None else b""
        manifest = json.loads(members.pop("manifest.json"))
    except (tarfile.TarError, OSError, EOFError, KeyError, ValueError) as err:
        raise BackupError(f"{where}: the archive inside is damaged: {err}") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{where}: a backup format this Lifeline cannot read")
    listed = manifest.get("members", {})
    if set(listed) != set(members):
        raise BackupError(f"{where}: the archive's members do not match its manifest")
    for name, data in members.items():
        if listed[name].get("sha256") != _sha256(data):
            raise BackupError(f"{where}: {name} does not match its checksum")
    if f"data/{STORE}" not in members:
        raise BackupError(f"{where}: holds no store")
    return Contents(manifest, members)


def check_store(data: bytes, where: str) -> None:
    """BackupError unless data is an intact Lifeline store this version can use."""
    with contextlib.closing(sqlite3.connect(":memory:")) as memory:
        try:
            memory.deserialize(data)
            check = memory.execute("PRAGMA integrity_check").fetchone()[0]
            tables = {r[0] for r in memory.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            version = int(memory.execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.Error as err:
            raise BackupError(f"{where}: the store inside is not a database: {err}") from err
    if check != "ok":
        raise BackupError(f"{where}: the store inside fails its integrity check: {check}")
    if missing := REQUIRED_TABLES - tables:
        raise BackupError(f"{where}: the store inside lacks {', '.join(sorted(missing))}")
    if version > SCHEMA_VERSION:
        raise BackupError(f"{where}: made by a newer Lifeline (store schema {version}); upgrade first")


# --------------------------------------------------------------------------- restoring one


_PATHS_TABLE = re.compile(r"\s*\[\s*paths\s*\]\s*(#.*)?$")
_ANY_TABLE = re.compile(r"\s*\[")


def carry_paths(text: str, paths: dict[str, str]) -> str:
    """The backed-up config with this install's [paths] instead of its own (every other line kept as written)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise BackupError(f"the backed-up config is not valid TOML: {err}") from err
    old = {k: str(Path(v)) for k, v in data.get("paths", {}).items()} if isinstance(data.get("paths"), dict) else None
    if (old or {}) == paths:
        return text
    kept: list[str] = []
    inside = False
    for line in text.splitlines(keepends=True):
        if _ANY_TABLE.match(line):
            inside = bool(_PATHS_TABLE.match(line))
        if not inside:
            kept.append(line)
    result = "".join(kept).rstrip("\n") + "\n"
    if paths:
        lines = "".join(f"{key} = {json.dumps(value)}\n" for key, value in sorted(paths.items()))
        was = ", ".join(f"{k} = {v}" for k, v in sorted((old or {}).items())) or "the defaults"
        result += f"\n# This install's own paths: a restore keeps them (the backup's were {was}).\n"
        result += f"[paths]\n{lines}"
    expected = {k: v for k, v in data.items() if k != "paths"} | ({"paths": paths} if paths else {})
    try:
        ok = tomllib.loads(result) == expected
    except tomllib.TOMLDecodeError:
        ok = False
    if not ok:
        raise BackupError("the backed-up config sets its paths in a form restore cannot replace: use a [paths] table")
    return result


def current_paths(config: Config) -> dict[str, str]:
    """This install's [paths] as set in its config (unset keys left out)."""
    return {k: str(v) for k, v in (("data_dir", config.paths.data_dir), ("run_dir", config.paths.run_dir)) if v}


def _holdings(data_dir: Path) -> dict[str, int]:
    """Extensions, call records and call events already in a data dir (what a restore would replace)."""
    found = {"extensions": 0, "records": 0, "call_events": 0}
    for name, queries in (
        (STORE, (("extensions", "extensions"), ("records", "cdrs"))),
        (ACC, (("call_events", "acc"),)),
    ):
        path = data_dir / name
        if not path.is_file():
            continue
        try:
            with _read_only(path) as conn:
                for key, table in queries:
                    found[key] = _rows(conn, f"SELECT COUNT(*) FROM {table}")
        except sqlite3.Error as err:
            raise BackupError(f"{path}: cannot tell what it holds ({err}); move it away by hand") from err
    return found


def _targets(data_dir: Path) -> list[Path]:
    """Every file of the data dir a restore writes, SQLite's companions included."""
    names = [f"{db}{suffix}" for db in (STORE, ACC) for suffix in SQLITE_SUFFIXES] + list(DATA_FILES)
    return [data_dir / name for name in names]


def _write_store(path: Path, data: bytes) -> None:
    private_database(path)
    with contextlib.closing(sqlite3.connect(":memory:")) as memory, contextlib.closing(sqlite3.connect(path)) as out:
        memory.deserialize(data)
        memory.backup(out)
        out.execute("PRAGMA journal_mode=WAL")


def _write_new(path: Path, data: bytes) -> None:
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _chown_like(path: Path, like: os.stat_result) -> None:
    # Run as root, a restore gives its files to the user the daemon runs as (who owns the directory).
    if os.geteuid() == 0:
        os.chown(path, like.st_uid, like.st_gid)


def restore(contents: Contents, config: Config, config_path: Path | None, *, replace: bool) -> RestoreReport:
    """Put a checked backup onto this install: data dir, config (keeping this install's [paths]), named files."""
    # Nothing is written until every check passed; what is there already is moved aside, never deleted.
    # The caller has made sure no daemon runs: while one does, it is the only writer of the data dir.
    members = contents.members
    where = "the backup"
    check_store(members[f"data/{STORE}"], where)
    new_config, new_text = config, None
    if "config/lifeline.toml" in members:
        if config_path is None:
            raise BackupError(
                "the backup holds a config, and this install has none to replace: create it empty "
                "(touch /etc/lifeline/lifeline.toml) and name it with --config"
            )
        try:
            text = members["config/lifeline.toml"].decode("utf-8")
        except UnicodeDecodeError as err:
            raise BackupError("the backed-up config is not UTF-8 text") from err
        new_text = carry_paths(text, current_paths(config))
        try:
            new_config = config_mod.parse(tomllib.loads(new_text), "the backed-up config")
        except LifelineError as err:
            raise BackupError(
                f"{err}\n(the backup's config does not suit this Lifeline; nothing was restored)"
            ) from err
    data_dir = new_config.data_dir
    held = _holdings(data_dir)
    if any(held.values()) and not replace:
        raise BackupError(
            f"{data_dir} is in use ({held['extensions']} extension(s), {held['records']} call record(s), "
            f"{held['call_events']} call event(s)): --replace restores over it, moving these files aside first"
        )
    report = RestoreReport(data_dir, config_path if new_text is not None else None, contents.counts)
    private_dir(data_dir)
    owner = data_dir.stat()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    staging = data_dir / f".restore-{secrets.token_hex(4)}"
    try:
        private_dir(staging)
        staged: list[tuple[Path, Path]] = []
        for name, data in members.items():
            if not name.startswith("data/"):
                continue
            relative = name.removeprefix("data/")
            if relative not in (STORE, ACC, *DATA_FILES):
                continue  # a later version's file this one does not know: left out rather than guessed at
            path = staging / relative
            if relative in (STORE, ACC):
                _write_store(path, data)
            else:
                _write_new(path, data)
            staged.append((path, data_dir / relative))
        Store(staging / STORE).close()  # brings an older backup's schema up to this version's
        existing = [p for p in _targets(data_dir) if p.exists()]
        if existing:
            aside = data_dir / f"before-restore-{stamp}"
            for path in existing:
                dest = aside / path.relative_to(data_dir)
                private_dir(dest.parent)
                path.rename(dest)
            report.moved_aside = aside
        for source, dest in staged:
            private_dir(dest.parent)
            # SQLite's companions (none after a clean close, but be sure) go before their database.
            for suffix in SQLITE_SUFFIXES[1:]:
                companion = Path(f"{source}{suffix}")
                if companion.exists():
                    companion.rename(f"{dest}{suffix}")
                    _chown_like(Path(f"{dest}{suffix}"), owner)
            source.rename(dest)
            _chown_like(dest, owner)
            report.written.append(dest)
    except (OSError, sqlite3.Error) as err:
        raise BackupError(f"{data_dir}: restore failed: {err}") from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if new_text is not None and config_path is not None:
        report.replaced_files += _restore_named_files(contents, stamp)
        _write_config(config_path, new_text)
        report.written.append(config_path)
    return report


def _restore_named_files(contents: Contents, stamp: str) -> list[Path]:
    """The files the config names, back where it names them; a different file there is moved aside."""
    moved: list[Path] = []
    for item in contents.manifest.get("referenced", []):
        path, data = Path(item["path"]), contents.members[item["name"]]
        try:
            if path.is_file() and path.read_bytes() == data:
                continue
            if path.exists():
                aside = path.with_name(f"{path.name}.before-restore-{stamp}")
                path.rename(aside)
                moved.append(aside)
            # Only a missing directory is made: an existing one (/etc/ssl/certs) keeps its mode.
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.chmod(path, 0o600 | (int(item.get("mode", 0)) & 0o044))
            _chown_like(path, path.parent.stat())
        except OSError as err:
            raise BackupError(f"{item['key']} = '{path}': cannot restore it: {err.strerror}") from err
    return moved


def _write_config(path: Path, text: str) -> None:
    try:
        like = path.stat() if path.exists() else None
        write_private(path, text)
        if like is not None:
            _chown_like(path, like)
    except OSError as err:
        raise BackupError(f"{path}: cannot write the restored config: {err.strerror}") from err
