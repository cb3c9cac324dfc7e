"""The status page's sessions: a random id in a cookie, the session itself in memory, forgotten when idle.

Only a correct password makes a session (the admin's, or the read-only viewer's); the id is 256 random
bits and the store keys it by its SHA-256, so a lookup compares no secret. Each session carries its own
CSRF token, which every POST must present (gateway.web.ui.page), and the password hash it logged in with:
the page ends it at once when that role's password is changed or removed. A restart logs everybody out.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.hw.admin import STATE_KEY

IDLE_S = 1800.0  # [api] session_idle_s: a session not used for this long is gone
LIFETIME_S = 12 * 3600.0  # however busy, a session ends after this long: log in again
LIMIT = 32  # sessions kept at once; a new login beyond evicts the least recently used


class Role(enum.StrEnum):
    """What a login may do: the admin everything, the viewer (office IT) look and download call records."""

    ADMIN = "admin"
    VIEWER = "viewer"


# Where each role's password hash is kept in the store (the admin's is also the front-panel button's).
PASSWORD_KEYS = {Role.ADMIN: STATE_KEY, Role.VIEWER: "viewer_password"}


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass
class Session:
    """One logged-in browser."""

    address: str  # where the login came from
    created: float
    seen: float
    role: Role = Role.ADMIN
    password_hash: str = ""  # the role's stored hash at login: another one now means the password changed
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    flash: list[str] = field(default_factory=list)  # messages for the next page shown, then dropped

    def csrf_ok(self, presented: str | None) -> bool:
        """Whether a POST presented this session's CSRF token."""
        return presented is not None and hmac.compare_digest(presented.encode(), self.csrf.encode())


class SessionStore:
    """Sessions in memory, by the hash of their id; idle ones and old ones expire."""

    def __init__(
        self,
        idle_s: float = IDLE_S,
        lifetime_s: float = LIFETIME_S,
        limit: int = LIMIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_s, self.lifetime_s, self.limit, self.clock = idle_s, lifetime_s, limit, clock
        self._sessions: dict[str, Session] = {}  # insertion order = order of last use

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, address: str, role: Role = Role.ADMIN, password_hash: str = "") -> tuple[str, Session]:
        """A new session for a correct login: (its id for the cookie, the session)."""
        now = self.clock()
        session_id = secrets.token_urlsafe(32)
        session = Session(address=address, created=now, seen=now, role=role, password_hash=password_hash)
        self._sessions[_key(session_id)] = session
        while len(self._sessions) > self.limit:
            del self._sessions[next(iter(self._sessions))]
        return session_id, session

    def get(self, session_id: str | None, *, touch: bool = True) -> Session | None:
        """The session of a cookie's id; None when unknown or expired. `touch` counts this as use (not a poll)."""
        if not session_id:
            return None
        key = _key(session_id)
        session = self._sessions.get(key)
        if session is None:
            return None
        now = self.clock()
        if now - session.seen >= self.idle_s or now - session.created >= self.lifetime_s:
            del self._sessions[key]
            return None
        if touch:
            session.seen = now
            self._sessions[key] = self._sessions.pop(key)  # most recently used last
        return session

    def drop(self, session_id: str | None) -> None:
        """Log out: forget the session."""
        if session_id:
            self._sessions.pop(_key(session_id), None)
