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
import functools
import hashlib
import io
import json
import socket
import sqlite3
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway import __version__
from gateway.cdr import repository as cdr_repository
from gateway.cdr.acc import acc_path
from gateway.cdr.capture import CURSOR_KEY
from gateway.config import Config
from gateway.core import alert_schema
from gateway.errors import BackupError
from gateway.mirror import repository as mirror_repository
from gateway.sip import accounting
from gateway.store import SCHEMA_VERSION, inspect_image, read_state, snapshot

FORMAT = 1
STORE = "lifeline.db"
ACC = STORE + ".acc"
# Files of the data dir besides the two databases (gateway.sip.render, gateway.sip.tls, gateway.trunk.agent).
DATA_FILES = ("sip-route.key", "trunk-minutes.json", "tls/lifeline.crt", "tls/lifeline.key")
MAX_MEMBER = 1 << 31
# Store tables a backup must have to be one of ours.
REQUIRED_TABLES = frozenset({"extensions", "cdrs", "cdr_outbox", "state"})


def _prune_store(conn: sqlite3.Connection) -> None:
    """A backup carries only what is not safe anywhere else yet: records every sink acked, delivered alerts go."""
    cdr_repository.prune_delivered(conn)
    alert_schema.prune_delivered(conn)


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
        # The pair key: a box restored after a disk loss must sign routes as its peer does, without a visit to it.
        ("ha.key_file", config.ha.key_file),
    ]
    found += [(f"trunk.modems[{m.name}].sim_pin_file", m.sim_pin_file) for m in config.trunk.modems]
    return [(key, path) for key, path in found if path is not None]


# --------------------------------------------------------------------------- making one


def count_rows(conn: sqlite3.Connection, count: Callable[[sqlite3.Connection], int]) -> int:
    """What a count of the owner's repository answers; 0 for a table an older store does not have yet."""
    try:
        return count(conn)
    except sqlite3.OperationalError:  # a table an older store does not have yet
        return 0


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def collect(config: Config, config_path: Path | None) -> tuple[bytes, dict[str, Any]]:
    """The plaintext of a backup of this install, and its manifest; blocking (run it off an event loop)."""
    db = config.db_path
    if not db.is_file():
        raise BackupError(f"{db}: no store to back up (no extension imported, the daemon never started)")
    members: dict[str, bytes] = {}
    try:
        store, memory = snapshot(db, _prune_store)
        with contextlib.closing(memory):
            cursor = int(read_state(memory, CURSOR_KEY, 0))
            counts = {
                "extensions": count_rows(memory, mirror_repository.count_extensions),
                "ring_groups": count_rows(memory, mirror_repository.count_ring_groups),
                "records": count_rows(memory, cdr_repository.count_calls),
                "pending_deliveries": count_rows(memory, cdr_repository.count_pending_deliveries),
                "pending_alerts": count_rows(memory, alert_schema.count),
            }
        members[f"data/{STORE}"] = store
        acc = acc_path(db)
        if acc.is_file():
            # After the store: an event folded in between is still here, above the copy's cursor.
            events, memory = snapshot(acc, functools.partial(accounting.drop_folded, upto=cursor))
            with contextlib.closing(memory):
                counts["call_events"] = count_rows(memory, accounting.count_events)
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
    try:
        check, tables, version = inspect_image(data)
    except sqlite3.Error as err:
        raise BackupError(f"{where}: the store inside is not a database: {err}") from err
    if check != "ok":
        raise BackupError(f"{where}: the store inside fails its integrity check: {check}")
    if missing := REQUIRED_TABLES - tables:
        raise BackupError(f"{where}: the store inside lacks {', '.join(sorted(missing))}")
    if version > SCHEMA_VERSION:
        raise BackupError(f"{where}: made by a newer Lifeline (store schema {version}); upgrade first")
