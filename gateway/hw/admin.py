"""The admin password: stored as a scrypt hash only; the button's 10 s hold makes a new one."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path
from typing import Protocol

from gateway.store import Store

STATE_KEY = "admin_password"
# No 0/O, 1/l/I: the password is read off a screen and typed in.
ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


class Console(Protocol):
    """Where the new password is shown: the device's console, never the log."""

    def show(self, text: str) -> None:
        """Print `text` for the person at the device."""
        ...


class TtyConsole:
    """Writes to a terminal device (/dev/tty1 is the HDMI screen; the service user is in group tty)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def show(self, text: str) -> None:
        """Write `text` to the terminal."""
        fd = os.open(self.path, os.O_WRONLY | os.O_NOCTTY | os.O_APPEND)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)


def new_password(groups: int = 4, size: int = 4) -> str:
    """A random password like 'k7qm-x2hp-9tvc-wn4e' (about 79 bits)."""
    return "-".join("".join(secrets.choice(ALPHABET) for _ in range(size)) for _ in range(groups))


def hash_password(password: str) -> str:
    """An scrypt hash with its parameters and salt, as one string."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches a hash made by `hash_password`."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        actual = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual.hex(), digest)


def reset_admin_password(store: Store, console: Console, by: str) -> None:
    """Make a new admin password, show it on the console only, then store its hash."""
    password = new_password()
    digest = hash_password(password)
    # The console first: if nobody can see the new password, the old one must stay in force.
    console.show(f"\r\n*** Lifeline: the admin password was reset ({by}). New password: {password} ***\r\n")
    try:
        store.set_state(STATE_KEY, {"hash": digest, "set_at": time.time(), "by": by})
    except Exception:
        console.show("\r\n*** Lifeline: could not save it; the old admin password stays in force ***\r\n")
        raise
    store.add_event("admin", f"admin password reset ({by})")
