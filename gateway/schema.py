"""lifeline.db's schema history: each capability's steps, applied in version order by Store.

Version 1 is the first release's shape; every release up to 2026-11-30 wrote user_version 1 whatever
shape its database had, so step 2 brings any of those shapes (tests/data/store/) to one. From 3 on, a
change is a new version with a step in the module of the capability that owns the table (3: the API's
tokens, a table version 2's daemon made on first use; tests/data/store/v2/).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping

from gateway.cdr import schema as cdr
from gateway.core import alert_schema as alerts
from gateway.mirror import schema as mirror
from gateway.sip import views as kamailio_views
from gateway.web import token_schema as tokens

Step = Callable[[sqlite3.Connection], None]


def _journal_v1(conn: sqlite3.Connection) -> None:
    """The daemon's own tables: events (the audit trail) and state (small persisted values)."""
    conn.execute(
        'CREATE TABLE IF NOT EXISTS "events" ("id" INTEGER PRIMARY KEY, "ts" REAL, "kind" TEXT,'
        ' "message" TEXT, "data" TEXT)'
    )
    conn.execute('CREATE TABLE IF NOT EXISTS "state" ("key" TEXT PRIMARY KEY, "value" TEXT)')


# Order matters within a version: Kamailio's views read the mirror's tables, so they come after it.
OWNERS: tuple[tuple[str, Mapping[int, Step]], ...] = (
    ("journal", {1: _journal_v1}),
    ("mirror", mirror.STEPS),
    ("alerts", alerts.STEPS),
    ("cdr", cdr.STEPS),
    ("kamailio", kamailio_views.STEPS),
    ("tokens", tokens.STEPS),
)

LATEST = max(version for _, steps in OWNERS for version in steps)


def steps(version: int) -> Iterator[tuple[str, Step]]:
    """(owner, step) of every capability that changes the schema at this version, in order."""
    for owner, owned in OWNERS:
        if version in owned:
            yield owner, owned[version]
