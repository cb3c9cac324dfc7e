"""`lifeline backup key|create|verify|restore`: one encrypted file with everything a new box needs."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import os
import re
import socket
import sys
from pathlib import Path
from typing import Any

from gateway.backup import archive, crypto, upload
from gateway.backup.restore import restore as restore_backup
from gateway.cli.client import request
from gateway.config import Config
from gateway.errors import BackupError, DaemonRequestError, DaemonUnreachableError
from gateway.fsmode import private_dir
from gateway.mirror.http import redact

SUFFIX = ".llbackup"
MAX_FILE = 4 << 30  # read whole into memory: a branch office's store is far smaller


def add_parser(sub: Any) -> None:
    """Register `lifeline backup …` on the CLI's subparsers."""
    backup = sub.add_parser("backup", help="encrypted backups: config, extensions, undelivered records, keys")
    cmds = backup.add_subparsers(dest="backup_command", required=True)
    key = cmds.add_parser("key", help="make a new backup key file (0600; never overwrites one)")
    key.add_argument("file", help="where to write it, or - to print it (then store it safely yourself)")
    create = cmds.add_parser("create", help="write a backup (while the daemon runs, or not)")
    create.add_argument("--out", help="file, or directory (existing, or ending in /) (default: backup.directory)")
    create.add_argument("--url", help="also PUT it to this https URL (default: backup.url)")
    _secret_options(create)
    verify = cmds.add_parser("verify", help="decrypt and check a backup; print what it holds")
    verify.add_argument("file", type=Path)
    _secret_options(verify)
    restore = cmds.add_parser("restore", help="restore a backup onto this install (the daemon must be stopped)")
    restore.add_argument("file", type=Path)
    restore.add_argument(
        "--replace", action="store_true", help="restore over extensions or records already here (moved aside)"
    )
    _secret_options(restore)


def _secret_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--key-file", type=Path, help="key file from `lifeline backup key` (default: backup.key_file)")
    group.add_argument("--passphrase-file", type=Path, help="file whose first line is the passphrase")
    group.add_argument("--passphrase", action="store_true", help="ask for the passphrase on the terminal")


def _secret(args: argparse.Namespace, config: Config, confirm: bool) -> crypto.Secret:
    if args.key_file is not None:
        return crypto.read_key_file(args.key_file)
    if args.passphrase_file is not None:
        return crypto.read_passphrase_file(args.passphrase_file)
    if args.passphrase:
        if not sys.stdin.isatty():
            raise BackupError("--passphrase asks on a terminal, and there is none: use --passphrase-file")
        text = getpass.getpass("backup passphrase: ")
        if confirm and getpass.getpass("again: ") != text:
            raise BackupError("the passphrases differ; nothing was written")
        return crypto.passphrase(text, "the passphrase typed")
    if config.backup.key_file is not None:
        return crypto.read_key_file(config.backup.key_file)
    if config.backup.passphrase_file is not None:
        return crypto.read_passphrase_file(config.backup.passphrase_file)
    raise BackupError(
        "no backup key: give --key-file FILE (make one with `lifeline backup key FILE`), "
        "--passphrase-file FILE or --passphrase, or set backup.key_file"
    )


def _read(path: Path) -> bytes:
    try:
        if path.stat().st_size > MAX_FILE:
            raise BackupError(f"{path}: larger than {MAX_FILE >> 30} GiB: not a Lifeline backup")
        return path.read_bytes()
    except OSError as err:
        raise BackupError(f"{path}: cannot read: {err.strerror}") from err


def _open(path: Path, secret: crypto.Secret) -> archive.Contents:
    _, plaintext = crypto.unseal(_read(path), secret, str(path))
    return archive.open_contents(plaintext, str(path))


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "lifeline"


def file_name(now: dt.datetime | None = None) -> str:
    """lifeline-<UTC time>-<host>.llbackup: sorts by time, tells boxes sharing a directory apart."""
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"lifeline-{stamp}-{_host()}{SUFFIX}"


def write_backup(path: Path, blob: bytes) -> None:
    """Write a new file at 0600, complete or not at all; an existing file is never replaced."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(blob)
                out.flush()
                os.fsync(out.fileno())
            if path.exists():
                raise BackupError(f"{path}: exists; a backup is never overwritten")
            partial.rename(path)
        finally:
            partial.unlink(missing_ok=True)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as err:
        raise BackupError(f"{path}: cannot write the backup: {err.strerror}") from err


def prune(directory: Path, keep: int) -> list[Path]:
    """Delete this box's backups in directory beyond the newest keep; returns what went."""
    pattern = re.compile(rf"lifeline-\d{{8}}T\d{{6}}Z-{re.escape(_host())}{re.escape(SUFFIX)}")
    ours = sorted(p for p in directory.iterdir() if pattern.fullmatch(p.name))
    gone = ours[: max(len(ours) - keep, 0)]
    for path in gone:
        path.unlink(missing_ok=True)
    return gone


def _destination(args: argparse.Namespace, config: Config, name: str) -> tuple[Path | None, bool]:
    """The file to write, and whether it is in backup.directory (where older ones are pruned)."""
    if args.out is None:
        if config.backup.directory is None:
            return None, False
        return private_dir(config.backup.directory) / name, True
    out = Path(args.out)  # kept a string until here: Path() drops the trailing / that names a directory
    if out.is_dir() or args.out.endswith("/"):
        out.mkdir(parents=True, exist_ok=True, mode=0o750)
        return out / name, False
    return out, False


def _create(args: argparse.Namespace, config: Config, config_path: Path | None) -> int:
    url = args.url or config.backup.url
    if args.out is None and config.backup.directory is None and url is None:
        raise BackupError("no destination: give --out FILE|DIR or --url, or set backup.directory or backup.url")
    secret = _secret(args, config, confirm=True)
    name = file_name()
    target, in_directory = _destination(args, config, name)
    token = None
    if url is not None and config.backup.token_file is not None:
        try:
            token = config.backup.token_file.read_text(encoding="utf-8").strip()
        except OSError as err:
            raise BackupError(f"backup.token_file = '{config.backup.token_file}': {err.strerror}") from err
    plaintext, manifest = archive.collect(config, config_path)
    blob = crypto.seal(plaintext, secret)
    counts = manifest["counts"]
    summary = (
        f"{counts['extensions']} extension(s), {counts['records']} undelivered call record(s), "
        f"{len(manifest['members'])} file(s), {len(blob) / 1024:.0f} KiB"
    )
    if target is not None:
        write_backup(target, blob)
        print(f"backup written: {target} ({summary})")
        if in_directory:
            for old in prune(target.parent, config.backup.keep):
                print(f"deleted the older backup {old} (backup.keep = {config.backup.keep})")
    if url is not None:
        where = upload.target_url(url, name)
        status = asyncio.run(
            upload.put(where, blob, token=token, ca_file=config.backup.ca_file, timeout_s=config.backup.timeout_s)
        )
        print(f"backup sent: PUT {redact(where)} → HTTP {status} ({summary})")
    for missing in manifest["missing"]:
        print(f"lifeline: warning: not in the backup: {missing}", file=sys.stderr)
    return 0


def _refuse_if_running(config: Config) -> None:
    try:
        status = asyncio.run(request(config.api_socket, "GET", "/api/v1/status", limit_s=5))
    except DaemonUnreachableError:
        return
    except DaemonRequestError as err:
        raise BackupError(f"a daemon answers on {config.api_socket} ({err}): stop it before a restore") from err
    raise BackupError(
        f"the daemon is running (pid {status.get('pid')}): stop it first (systemctl stop lifeline); "
        "while it runs it is the only writer of the data directory. Nothing was restored"
    )


def _restore(args: argparse.Namespace, config: Config, config_path: Path | None) -> int:
    _refuse_if_running(config)
    contents = _open(args.file, _secret(args, config, confirm=False))
    report = restore_backup(contents, config, config_path, replace=args.replace)
    counts = report.counts
    print(
        f"restored {args.file} (made {contents.manifest['created']} on {contents.manifest['host']}): "
        f"{counts.get('extensions', 0)} extension(s), {counts.get('records', 0)} undelivered call record(s)"
    )
    print(f"data:   {report.data_dir}")
    if report.config_path is not None:
        print(f"config: {report.config_path} (this install's [paths] kept)")
    if report.moved_aside is not None:
        print(f"what was there before: {report.moved_aside}")
    for path in report.replaced_files:
        print(f"replaced file kept as {path}")
    print("start the daemon now (systemctl start lifeline): the phones register with their passwords as before")
    return 0


def _verify(args: argparse.Namespace, config: Config) -> int:
    contents = _open(args.file, _secret(args, config, confirm=False))
    archive.check_store(contents.members[f"data/{archive.STORE}"], str(args.file))
    manifest = contents.manifest
    print(f"{args.file}: intact; made {manifest['created']} on {manifest['host']} by Lifeline {manifest['lifeline']}")
    for key, value in sorted(contents.counts.items()):
        print(f"  {key:20} {value}")
    for item in manifest.get("referenced", []):
        print(f"  file {item['key']}: {item['path']}")
    return 0


def run(args: argparse.Namespace, config: Config, config_path: Path | None) -> int:
    """Run one `lifeline backup` command."""
    if args.backup_command == "key":
        if args.file == "-":
            sys.stdout.write(crypto.new_key_text())
            return 0
        path = Path(args.file)
        crypto.write_new_key(path)
        print(f"new backup key written to {path} (mode 0600); keep a copy away from this box")
        return 0
    if args.backup_command == "create":
        return _create(args, config, config_path)
    if args.backup_command == "verify":
        return _verify(args, config)
    return _restore(args, config, config_path)
