"""The pair key ([ha] key_file): one secret both boxes share, so each honours what the other signed."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from pathlib import Path

from gateway.errors import HaError
from gateway.secretfile import create_secret_file, read_secret_file

KEY_BYTES = 32
HEADER = "# Lifeline pair key: the same file on both boxes of a pair ([ha] key_file), mode 0600.\n"
ROUTE_LABEL = b"lifeline sip route"  # what the Record-Route key is derived for; the pair key never leaves us


def write_new_key(path: Path) -> None:
    """Write a new random pair key at 0600; an existing file is never replaced (the peer has it)."""
    text = HEADER + secrets.token_hex(KEY_BYTES) + "\n"
    create_secret_file(path, text, HaError, "a pair key is never overwritten (the other box uses it)")


def read_key(path: Path) -> bytes:
    """The pair key in path (refused if group or others may read it); errors name ha.key_file."""
    where = f"ha.key_file {path}"
    missing = f"no such file; make it with `lifeline ha key {path}` on one box, copy it"
    text = read_secret_file(path, HaError, where, missing)
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if len(lines) != 1 or not re.fullmatch(rf"[0-9a-f]{{{2 * KEY_BYTES}}}", lines[0]):
        raise HaError(f"{where}: not a pair key (one line of {2 * KEY_BYTES} hex digits, from `lifeline ha key`)")
    return bytes.fromhex(lines[0])


def route_key(pair_key: bytes) -> str:
    """The key that signs Record-Route on both boxes, as hex: derived, so Kamailio never sees the pair key."""
    return hmac.new(pair_key, ROUTE_LABEL, hashlib.sha256).hexdigest()
