"""Putting a backup (gateway.backup.archive) back onto an install: its data, config and named files."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import secrets
import shutil
import sqlite3
import tomllib
from collections.abc import Callable
from pathlib import Path

from gateway import config as config_mod
from gateway.backup.archive import ACC, DATA_FILES, STORE, Contents, check_store, count_rows
from gateway.cdr import repository as cdr_repository
from gateway.config import Config
from gateway.errors import BackupError, LifelineError
from gateway.fsmode import SQLITE_SUFFIXES, private_dir, write_private
from gateway.mirror import repository as mirror_repository
from gateway.sip import accounting
from gateway.store import Store, read_only, write_image


@dataclasses.dataclass
class RestoreReport:
    """What a restore wrote, and where the files it replaced went."""

    data_dir: Path
    config_path: Path | None
    counts: dict[str, int]
    written: list[Path] = dataclasses.field(default_factory=list)
    moved_aside: Path | None = None
    replaced_files: list[Path] = dataclasses.field(default_factory=list)


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
    counts: tuple[tuple[str, tuple[tuple[str, Callable[[sqlite3.Connection], int]], ...]], ...] = (
        (STORE, (("extensions", mirror_repository.count_extensions), ("records", cdr_repository.count))),
        (ACC, (("call_events", accounting.count_events),)),
    )
    for name, queries in counts:
        path = data_dir / name
        if not path.is_file():
            continue
        try:
            with read_only(path) as conn:
                for key, count in queries:
                    found[key] = count_rows(conn, count)
        except sqlite3.Error as err:
            raise BackupError(f"{path}: cannot tell what it holds ({err}); move it away by hand") from err
    return found


def _targets(data_dir: Path) -> list[Path]:
    """Every file of the data dir a restore writes, SQLite's companions included."""
    names = [f"{db}{suffix}" for db in (STORE, ACC) for suffix in SQLITE_SUFFIXES] + list(DATA_FILES)
    return [data_dir / name for name in names]


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
                write_image(path, data)
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
