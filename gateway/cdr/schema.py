"""SQL schema of call records: the folded `cdrs`, their delivery outbox, and what Kamailio reads of them."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping

# seq is the stable delivery order; id the call's UUID the sinks dedupe on (gateway/cdr/pair.py).
# *_mono are CLOCK_BOOTTIME seconds of the same boot (boot_id): they let a later, better
# clock correct timestamps taken while the wall clock could not be trusted.
CDRS_TABLE = """
CREATE TABLE IF NOT EXISTS cdrs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    call_id TEXT NOT NULL,
    from_tag TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    start_ts REAL NOT NULL,
    answer_ts REAL,
    end_ts REAL,
    start_mono REAL,
    answer_mono REAL,
    end_mono REAL,
    boot_id TEXT NOT NULL DEFAULT '',
    clock_source TEXT NOT NULL,
    from_number TEXT NOT NULL DEFAULT '',
    to_number TEXT NOT NULL DEFAULT '',
    from_ext TEXT,
    to_ext TEXT,
    direction TEXT NOT NULL DEFAULT 'internal',
    disposition TEXT,
    sip_code INTEGER,
    hangup_cause TEXT,
    trunk TEXT,
    trunk_call TEXT,
    mode TEXT NOT NULL DEFAULT 'survival',
    final_at REAL,
    UNIQUE (call_id, from_tag)
)
"""

OUTBOX_TABLE = """
CREATE TABLE IF NOT EXISTS cdr_outbox (
    sink TEXT NOT NULL,
    cdr_seq INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    updated_at REAL,
    PRIMARY KEY (sink, cdr_seq)
) WITHOUT ROWID
"""

# Settings Kamailio reads at start through htable (db_url = the same file): whether calls
# relayed to the cloud in NORMAL are recorded too.
SETTINGS_TABLE = """
CREATE TABLE IF NOT EXISTS cdr_settings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key_name VARCHAR(64) NOT NULL UNIQUE,
    key_type INTEGER NOT NULL DEFAULT 0,
    value_type INTEGER NOT NULL DEFAULT 0,
    key_value VARCHAR(128) NOT NULL DEFAULT '',
    expires INTEGER NOT NULL DEFAULT 0
)
"""

# trunk_call joins the ring-group legs of one inbound trunk call (capture.py); stores from before it
# have `cdrs` without the column, added in place, then the index that needs it.
CDRS_TRUNK_CALL_INDEX = "CREATE INDEX IF NOT EXISTS cdrs_trunk_call ON cdrs (trunk_call) WHERE trunk_call IS NOT NULL"

CDR_SCHEMA = (
    CDRS_TABLE,
    OUTBOX_TABLE,
    SETTINGS_TABLE,
    "CREATE INDEX IF NOT EXISTS cdr_outbox_state ON cdr_outbox (sink, state, cdr_seq)",
    "CREATE INDEX IF NOT EXISTS cdrs_state ON cdrs (state, final_at)",
)


def _v2(conn: sqlite3.Connection) -> None:
    """Call records, their outbox and Kamailio's settings table, from any shape of the first week."""
    for statement in CDR_SCHEMA:
        conn.execute(statement)
    if "trunk_call" not in {row[1] for row in conn.execute("PRAGMA table_info(cdrs)")}:
        conn.execute("ALTER TABLE cdrs ADD COLUMN trunk_call TEXT")
    conn.execute(CDRS_TRUNK_CALL_INDEX)


STEPS: Mapping[int, Callable[[sqlite3.Connection], None]] = {2: _v2}
