"""The network API's token table (api_tokens), as each schema version left it."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping


def _v3(conn: sqlite3.Connection) -> None:
    """Bearer tokens by id, their SHA-256 digests only; the daemon of version 2 made this table on first use."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS api_tokens (id TEXT PRIMARY KEY, name TEXT NOT NULL, scope TEXT NOT NULL,"
        " digest TEXT NOT NULL, created_at REAL NOT NULL, revoked_at REAL, last_used_at REAL, last_used_from TEXT)"
    )


STEPS: Mapping[int, Callable[[sqlite3.Connection], None]] = {3: _v3}
