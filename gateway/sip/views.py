"""The views Kamailio reads in lifeline.db, so the daemon's tables stay the one source of truth."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping

# auth_db reads credentials through this view (gateway/sip/kamailio.cfg.tmpl: user_column etc.).
SUBSCRIBER_VIEW = """
CREATE VIEW IF NOT EXISTS subscriber AS
SELECT auth_user AS username, realm AS domain, ha1, ha1_sha256, number
FROM extensions
"""
# Ring groups as route[GROUP] reads them: members as one comma-separated string.
GROUPS_VIEW = """
CREATE VIEW IF NOT EXISTS kamailio_groups AS
SELECT g.number AS number, (SELECT group_concat(value, ',') FROM json_each(g.members)) AS members
FROM ring_groups g
"""
# The same rows keyed by extension number: "is this number one of ours?" for 404 versus 480.
NUMBERS_VIEW = """
CREATE VIEW IF NOT EXISTS numbers AS
SELECT number AS username, realm AS domain, ha1, ha1_sha256, number
FROM extensions
"""


def _v1(conn: sqlite3.Connection) -> None:
    """Credentials for auth_db."""
    conn.execute(SUBSCRIBER_VIEW)


def _v2(conn: sqlite3.Connection) -> None:
    """Numbers and ring groups."""
    conn.execute(NUMBERS_VIEW)
    conn.execute(GROUPS_VIEW)


STEPS: Mapping[int, Callable[[sqlite3.Connection], None]] = {1: _v1, 2: _v2}
