"""The backup file's envelope: AES-256-GCM under a key file or a passphrase (scrypt), header authenticated.

Layout: MAGIC, a 4-byte big-endian header length, the header (JSON), a 12-byte nonce, then the
ciphertext with its 16-byte GCM tag. The header is the cipher's associated data: changing a byte of
it, or of the ciphertext, fails the tag. The header also carries a key check (an HKDF output of the
key, not the key) so that a wrong key or passphrase is told apart from a damaged file.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import json
import secrets
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.errors import BackupError
from gateway.secretfile import create_secret_file, read_secret_file

# cryptography is imported where a key is derived or a file sealed, not above: every `lifeline`
# command, the daemon too, imports this module, and cryptography's bindings cost ~10 MiB resident.

MAGIC = b"LIFELINE-BACKUP\n"
FORMAT = 1
KEY_BYTES = 32
NONCE_BYTES = 12
SALT_BYTES = 16
MAX_HEADER = 4096
KEY_PREFIX = "lifeline-backup-key-v1:"
MIN_PASSPHRASE = 12
# scrypt at N=2^15, r=8: 32 MiB and a fraction of a second on a Pi 4, per backup and per restore.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
# A file's header names its own scrypt cost: cap it, or a crafted file could ask for gigabytes.
SCRYPT_MAX_N, SCRYPT_MAX_R, SCRYPT_MAX_P = 2**20, 16, 4
KEY_FILE_TEXT = (
    "# Lifeline backup key (AES-256-GCM). Keep a copy away from this box:\n"
    "# without it, no backup made with it can be restored.\n"
)


class WrongKeyError(BackupError):
    """The key or passphrase is not the one the backup was made with."""


class TamperedError(BackupError):
    """The file was changed or damaged after it was written (the GCM tag does not match)."""


@dataclass(frozen=True)
class Secret:
    """What the operator holds: a 32-byte key (key file) or a passphrase."""

    key: bytes | None = None
    passphrase: str | None = None
    source: str = ""  # where it came from, for messages (never the secret)

    def __repr__(self) -> str:
        return f"Secret(source={self.source!r})"


def new_key_text() -> str:
    """The text of a new key file: a comment and one line with 32 random bytes."""
    encoded = base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode().rstrip("=")
    return f"{KEY_FILE_TEXT}{KEY_PREFIX}{encoded}\n"


def write_new_key(path: Path) -> None:
    """Write a new key file at 0600; an existing file is never replaced (its backups would be lost)."""
    create_secret_file(path, new_key_text(), BackupError, "a key is never overwritten (backups made with it need it)")


def _private_text(path: Path, what: str) -> str:
    return read_secret_file(path, BackupError, f"{path}: the {what}", f"no such {what}")


def read_key_file(path: Path) -> Secret:
    """The key in a key file made by `lifeline backup key` (refused if group or others may read it)."""
    lines = [line.strip() for line in _private_text(path, "key file").splitlines()]
    keys = [line.removeprefix(KEY_PREFIX) for line in lines if line.startswith(KEY_PREFIX)]
    if len(keys) != 1:
        raise BackupError(f"{path}: not a Lifeline backup key file (no single {KEY_PREFIX}… line)")
    try:
        key = base64.urlsafe_b64decode(keys[0] + "=" * (-len(keys[0]) % 4))
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise BackupError(f"{path}: the key line is damaged (expected {KEY_BYTES} bytes in base64)")
    return Secret(key=key, source=str(path))


def passphrase(text: str, source: str) -> Secret:
    """A passphrase as the operator typed or filed it (the line end dropped); refused when too short."""
    text = text.rstrip("\r\n")
    if len(text) < MIN_PASSPHRASE:
        raise BackupError(f"{source}: a backup passphrase needs at least {MIN_PASSPHRASE} characters")
    return Secret(passphrase=text, source=source)


def read_passphrase_file(path: Path) -> Secret:
    """The passphrase on the first line of a file (refused if group or others may read it)."""
    text = _private_text(path, "passphrase file")
    return passphrase(text.splitlines()[0] if text else "", str(path))


def _hkdf(master: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(master)


def _master(secret: Secret, header: dict[str, Any], salt: bytes) -> bytes:
    if header["kdf"] == "key":
        if secret.key is None:
            raise WrongKeyError("this backup was made with a key file: give --key-file")
        return secret.key
    if secret.passphrase is None:
        raise WrongKeyError("this backup was made with a passphrase: give --passphrase-file or --passphrase")
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    n, r, p = header["scrypt"]["n"], header["scrypt"]["r"], header["scrypt"]["p"]
    return Scrypt(salt=salt, length=KEY_BYTES, n=n, r=r, p=p).derive(secret.passphrase.encode())


def _keys(secret: Secret, header: dict[str, Any], salt: bytes) -> tuple[bytes, bytes]:
    master = _master(secret, header, salt)
    return _hkdf(master, salt, b"lifeline backup v1 aes-256-gcm", KEY_BYTES), _hkdf(
        master, salt, b"lifeline backup v1 key check", 16
    )


def seal(plaintext: bytes, secret: Secret, created: dt.datetime | None = None) -> bytes:
    """The whole backup file for plaintext."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    salt = secrets.token_bytes(SALT_BYTES)
    header: dict[str, Any] = {
        "format": FORMAT,
        "cipher": "AES-256-GCM",
        "kdf": "key" if secret.key is not None else "scrypt",
        "salt": base64.b64encode(salt).decode(),
        "created": (created or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds"),
    }
    if secret.key is None:
        header["scrypt"] = {"n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P}
    enc_key, check = _keys(secret, header, salt)
    header["check"] = check.hex()
    head = json.dumps(header, sort_keys=True).encode()
    prefix = MAGIC + struct.pack(">I", len(head)) + head
    nonce = secrets.token_bytes(NONCE_BYTES)
    return prefix + nonce + AESGCM(enc_key).encrypt(nonce, plaintext, prefix)


def read_header(blob: bytes, where: str) -> tuple[dict[str, Any], int]:
    """The header of a backup file and where its nonce starts; BackupError if it is not one."""
    if not blob.startswith(MAGIC):
        raise BackupError(f"{where}: not a Lifeline backup file")
    start = len(MAGIC) + 4
    if len(blob) < start:
        raise BackupError(f"{where}: truncated (no header)")
    (length,) = struct.unpack(">I", blob[len(MAGIC) : start])
    if length > MAX_HEADER or len(blob) < start + length + NONCE_BYTES + 16:
        raise BackupError(f"{where}: truncated or damaged (header of {length} bytes)")
    try:
        header = json.loads(blob[start : start + length])
        salt = base64.b64decode(header["salt"], validate=True)
        valid = (
            isinstance(header, dict)
            and header.get("format") == FORMAT
            and header.get("kdf") in ("key", "scrypt")
            and len(salt) == SALT_BYTES
            and len(bytes.fromhex(header["check"])) == 16
        )
        if valid and header["kdf"] == "scrypt":
            cost = header["scrypt"]
            n, r, p = int(cost["n"]), int(cost["r"]), int(cost["p"])
            valid = 2 <= n <= SCRYPT_MAX_N and n & (n - 1) == 0 and 1 <= r <= SCRYPT_MAX_R and 1 <= p <= SCRYPT_MAX_P
    except (ValueError, KeyError, TypeError, binascii.Error) as err:
        raise BackupError(f"{where}: damaged header ({type(err).__name__})") from err
    if not valid:
        raise BackupError(f"{where}: a backup format this Lifeline cannot read (format {header.get('format')!r})")
    return header, start + length


def unseal(blob: bytes, secret: Secret, where: str) -> tuple[dict[str, Any], bytes]:
    """The header and plaintext of a backup file: WrongKeyError, TamperedError or BackupError otherwise."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    header, body = read_header(blob, where)
    salt = base64.b64decode(header["salt"])
    enc_key, check = _keys(secret, header, salt)
    if not hmac.compare_digest(check.hex(), str(header["check"])):
        kind = "key" if header["kdf"] == "key" else "passphrase"
        raise WrongKeyError(f"{where}: wrong {kind} ({secret.source}): this backup was made with another one")
    nonce = blob[body : body + NONCE_BYTES]
    try:
        plaintext = AESGCM(enc_key).decrypt(nonce, blob[body + NONCE_BYTES :], blob[:body])
    except InvalidTag as err:
        raise TamperedError(f"{where}: changed or damaged since it was written (authentication failed)") from err
    return header, plaintext
