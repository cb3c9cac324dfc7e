"""`lifeline config check|init`: the config's rules for install.sh and lifeline-provision, from gateway/config/."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tomli_w

from gateway import config as config_mod
from gateway.config import Config
from gateway.errors import ConfigError

EXIT_ERROR = 1
EXIT_CONFIG = 2  # as main.EXIT_CONFIG: a bad config, whichever command found it
INIT_SOURCE = "lifeline config init"
HEADER = (
    "Lifeline configuration, written by {by} on {date}.",
    "All keys: firmware/lifeline.toml.example in the source. Restart after editing:",
    "  systemctl restart lifeline",
)
NO_CLOUD = (
    "No cloud SBC: Lifeline serves the phones itself (survival only). To add one, under [cloud]:",
    '  sbc = "sip:sbc.example.com:5060;transport=udp"',
)
# TOML allows no control character but tab in a comment: a --comment with one would break the file.
COMMENT_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Each option of `config init` and the key it sets: install.sh's flags are named the same.
INIT_KEYS = {
    "cloud_sbc": ("cloud", "sbc"),
    "realm": ("cloud", "realm"),
    "sip_listen": ("sip", "listen"),
    "sip_port": ("sip", "port"),
    "data_dir": ("paths", "data_dir"),
    "run_dir": ("paths", "run_dir"),
    "pinmap": ("hardware", "pinmap"),
}
OPTION_OF = {f"{section}.{key}": "--" + option.replace("_", "-") for option, (section, key) in INIT_KEYS.items()}


def add_parser(sub: Any) -> None:
    """Register `lifeline config …` on the main parser's subcommands."""
    cfg = sub.add_parser("config", help="check a config file, or write a new one from options")
    csub = cfg.add_subparsers(dest="config_command", required=True)
    check = csub.add_parser("check", help="validate FILE as the daemon would; exit 2 names every bad key")
    check.add_argument("file", type=Path)
    check.add_argument("--json", action="store_true", help='print {"ok": true|false, "error": message|null}')
    init = csub.add_parser(
        "init", help="write a config from these options, validated first; keys not given keep their defaults"
    )
    # Strings, not argparse types: the model converts and refuses them, with the message naming the key.
    init.add_argument("--cloud-sbc", metavar="URI", help="cloud.sbc, e.g. 'sip:sbc.example.com:5060;transport=udp'")
    init.add_argument("--realm", help="cloud.realm: the cloud PBX's digest realm")
    init.add_argument("--sip-listen", metavar="IP", help="sip.listen: the address Kamailio listens on")
    init.add_argument("--sip-port", metavar="N", help="sip.port: 1-65535 (phones need a fixed port)")
    init.add_argument("--data-dir", metavar="DIR", help="paths.data_dir")
    init.add_argument("--run-dir", metavar="DIR", help="paths.run_dir")
    init.add_argument("--hardware", action="store_true", help="hardware.enabled = true: the Lifeline HAT")
    init.add_argument("--pinmap", metavar="FILE", help="hardware.pinmap")
    init.add_argument("--written-by", default=INIT_SOURCE, metavar="NAME", help="who the header says wrote it")
    init.add_argument("--comment", action="append", default=[], metavar="TEXT", help="a header line (repeatable)")
    init.add_argument("--output", "-o", type=Path, metavar="FILE", help="write FILE (mode 0600); default: stdout")
    init.add_argument("--force", action="store_true", help="replace --output if it exists")


def run(args: argparse.Namespace) -> int:
    """Run `lifeline config check|init`; it reads no config of its own, so a broken one cannot stop it."""
    if args.config_command == "check":
        return _check(args.file, as_json=args.json)
    return _init(args)


def _check(path: Path, *, as_json: bool) -> int:
    try:
        config_mod.load(path)
        error = None
    except ConfigError as err:
        error = str(err)  # gateway.config keeps secrets out of it
    if as_json:
        print(json.dumps({"ok": error is None, "error": error}))
    elif error is None:
        print(f"{path}: ok")
    else:
        print(error, file=sys.stderr)
    return 0 if error is None else EXIT_CONFIG


def build(args: argparse.Namespace) -> Config:
    """The config of init's options, validated by the model; only the keys the options set count as set."""
    data: dict[str, dict[str, Any]] = {}
    for option, (section, key) in INIT_KEYS.items():
        value = getattr(args, option)
        if value is not None:
            data.setdefault(section, {})[key] = value
    if args.hardware:
        data.setdefault("hardware", {})["enabled"] = True
    config = config_mod.parse(data, INIT_SOURCE)
    if args.sip_port is not None and config.sip.port == 0:
        # The model allows 0 (a free port at each start, for tests); phones could not find it.
        raise ConfigError(f"{INIT_SOURCE}: invalid configuration:\n  sip.port = 0: phones need a fixed port (1-65535)")
    return config


def render(config: Config, written_by: str, comments: list[str]) -> str:
    """The file: a header comment, then the TOML of the keys set (the rest keep the daemon's defaults)."""
    tables = config.model_dump(mode="json", exclude_unset=True)
    date = datetime.now(UTC).date().isoformat()
    texts = [*(line.format(by=written_by, date=date) for line in HEADER), *comments]
    if config.cloud.sbc is None:
        texts += NO_CLOUD
    lines = [COMMENT_FORBIDDEN.sub(" ", line) for text in texts for line in text.splitlines()]
    header = "".join(f"# {line}".rstrip() + "\n" for line in lines)
    return f"{header}\n{tomli_w.dumps(tables)}"


def write_atomic(path: Path, text: str, *, replace: bool) -> None:
    """Write path through a temp file beside it and a rename: readers see no file or the whole one, 0600 always."""
    if not replace and path.exists():
        raise FileExistsError(f"{path} exists; --force replaces it")
    # mkstemp makes it 0600 from its first byte, whatever the umask: the file may later hold tokens.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())  # an appliance loses power: the rename must not land before the content
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    # The rename itself survives a power cut once the directory is synced; where a file system cannot sync a
    # directory, the file is in place all the same.
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _init(args: argparse.Namespace) -> int:
    try:
        config = build(args)
    except ConfigError as err:
        # The message names keys; whoever typed the command (or install.sh's) knows the options.
        keys = [f"{key} is {option}" for key, option in OPTION_OF.items() if f"\n  {key} " in str(err)]
        print(f"{err}\n({'; '.join(keys)})" if keys else err, file=sys.stderr)
        return EXIT_CONFIG
    text = render(config, args.written_by, args.comment)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        write_atomic(args.output, text, replace=args.force)
    except OSError as err:
        print(f"lifeline: {err}", file=sys.stderr)
        return EXIT_ERROR
    print(f"wrote {args.output}")
    return 0
