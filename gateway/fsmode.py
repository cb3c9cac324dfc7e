"""Data at rest: the data directory is 0750 and its files 0600, whichever command creates them first.

The store holds every extension's HA1 and the call records' numbers. The umask of whoever runs
`lifeline extensions import` or `lifeline run` first must not decide who else may read them, so every
directory and file of the data dir is made through here, and one made by an older version is tightened.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

DIR_MODE = 0o750  # the group (the `lifeline` group of the appliance) may list it: the CLI reaches the socket
FILE_MODE = 0o600
# SQLite's companions of a database: created with the database's own mode, but tightened with it too.
SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def _tighten(path: Path, allowed: int) -> None:
    info = path.stat()
    mode = info.st_mode & 0o7777
    # Someone else's directory, or a shared one such as /tmp (sticky), is not ours to change.
    if info.st_uid != os.geteuid() or mode & stat.S_ISVTX:
        return
    if mode & ~allowed:
        path.chmod(mode & allowed)  # only ever takes bits away: a stricter mode the operator chose stays


def private_dir(path: Path) -> Path:
    """Create path (and missing parents) at most 0750, and take group write and all others' bits off it."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    for created in missing:
        _tighten(created, DIR_MODE)  # mkdir's mode is cut by the umask, never widened: parents get 0777 & ~umask
    _tighten(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create path empty at 0600 if missing (its directory private), and tighten it if it exists."""
    private_dir(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE))
    _tighten(path, FILE_MODE)
    return path


def private_database(path: Path) -> Path:
    """An SQLite database file at 0600 before SQLite opens it, with any WAL or journal beside it tightened too."""
    private_file(path)
    for suffix in SQLITE_SUFFIXES[1:]:
        companion = Path(f"{path}{suffix}")
        with contextlib.suppress(FileNotFoundError):
            _tighten(companion, FILE_MODE)
    return path


def write_private(path: Path, text: str) -> None:
    """Replace path's content atomically with text, the file 0600 from its first byte."""
    private_dir(path.parent)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    _tighten(tmp, FILE_MODE)  # a leftover .tmp of an older version keeps its mode through O_TRUNC
    tmp.replace(path)
