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
may hold clear passwords) is left out. Putting one back is gateway.backup.restore.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import io
import json
import socket
import sqlite3
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gateway import __version__
from gateway.cdr.acc import acc_path
from gateway.cdr.capture import CURSOR_KEY
from gateway.config import Config
from gateway.errors import BackupError
from gateway.store import SCHEMA_VERSION

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


def count_rows(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> int:
    """The one number a COUNT query answers; 0 for a table an older store does not have yet."""
    try:
        return int(conn.execute(sql, params).fetchone()[0])
    except sqlite3.OperationalError:  # a table an older store does not have yet
        return 0


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to the SQLite database at path."""
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
        with read_only(path) as source:
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
                "extensions": count_rows(memory, "SELECT COUNT(*) FROM extensions"),
                "ring_groups": count_rows(memory, "SELECT COUNT(*) FROM ring_groups"),
                "records": count_rows(memory, "SELECT COUNT(*) FROM cdrs WHERE state != 'merged'"),
                "pending_deliveries": count_rows(memory, "SELECT COUNT(*) FROM cdr_outbox WHERE state = 'pending'"),
                "pending_alerts": count_rows(memory, "SELECT COUNT(*) FROM alerts"),
            }
        members[f"data/{STORE}"] = store
        acc = acc_path(db)
        if acc.is_file():
            # After the store: an event folded in between is still here, above the copy's cursor.
            events, memory = _snapshot(acc, (("DELETE FROM acc WHERE id <= ?", (cursor,)),))
            with contextlib.closing(memory):
                counts["call_events"] = count_rows(memory, "SELECT COUNT(*) FROM acc")
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
