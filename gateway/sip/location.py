"""Kamailio's bindings on disk: usrloc writes them back to a file of its own; a restart serves phones at once."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from pathlib import Path

from gateway.errors import SipError
from gateway.fsmode import private_database

# kamailio-sqlite-modules ships the schema of the installed Kamailio: read, never copied, so an
# upgrade that changes the location table brings its own.
SCHEMA_DIR = Path("/usr/share/kamailio/db_sqlite")
SCHEMA_FILES = ("standard-create.sql", "usrloc-create.sql")
VERSION = re.compile(r"values \('location',\s*'(\d+)'\)", re.IGNORECASE)


def location_path(db_path: Path) -> Path:
    """Where usrloc keeps its bindings, beside the store (kamailio.cfg.tmpl: `%%db_path.location`)."""
    return db_path.with_name(db_path.name + ".location")


def _schema(schema_dir: Path) -> tuple[str, int]:
    texts = []
    for name in SCHEMA_FILES:
        path = schema_dir / name
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except OSError as err:
            raise SipError(f"{path}: {err.strerror} (the package kamailio-sqlite-modules ships it)") from err
    found = VERSION.search(texts[-1])
    if found is None:
        raise SipError(f"{schema_dir / SCHEMA_FILES[-1]}: no version of the location table in it")
    return "\n".join(texts), int(found[1])


def _version(path: Path) -> int | None:
    with contextlib.closing(sqlite3.connect(path)) as db:
        try:
            row = db.execute("SELECT table_version FROM version WHERE table_name = 'location'").fetchone()
        except sqlite3.DatabaseError:
            return None  # no table yet, or not a database at all: made anew
    return None if row is None else int(row[0])


def prepare_location(db_path: Path, schema_dir: Path = SCHEMA_DIR) -> Path:
    """Before Kamailio starts: its bindings file, 0600, with the installed Kamailio's location table."""
    script, wanted = _schema(schema_dir)
    path = location_path(db_path)
    private_database(path)  # contacts are phones' addresses: as private as the store
    if path.stat().st_size and _version(path) == wanted:
        return path
    # Missing, empty or of another Kamailio version: bindings are soft state, phones register again.
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()
    private_database(path)
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.executescript(f"BEGIN;\n{script}\nCOMMIT;")
    return path
