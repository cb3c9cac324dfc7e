"""SQL schema of call records: Kamailio's raw `acc` events, the folded `cdrs`, and the delivery outbox."""

from __future__ import annotations

# Kamailio's acc module inserts one row per accounted event through db_sqlite (time_mode 2:
# `time_attr` holds seconds.milliseconds of the wall clock) into lifeline.db.acc, a file only
# Kamailio writes (db_sqlite has no busy timeout: an insert meeting another writer is lost).
# The extra columns are set in kamailio.cfg.tmpl (db_extra). The daemon only reads it and keeps
# its cursor (the last folded id) in the main store, in the same transaction as the records.
ACC_TABLE = """
CREATE TABLE IF NOT EXISTS acc (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    method VARCHAR(16),
    from_tag VARCHAR(128),
    to_tag VARCHAR(128),
    callid VARCHAR(255),
    sip_code VARCHAR(3),
    sip_reason VARCHAR(128),
    time TIMESTAMP,
    time_attr DOUBLE,
    src_user VARCHAR(64),
    dst_user VARCHAR(64),
    start_time VARCHAR(32),
    cdr_mode VARCHAR(16),
    src_name VARCHAR(128),
    pai VARCHAR(255),
    trunk VARCHAR(512)
)
"""

# Columns added to `acc` after the first release: (name, SQL type), added to older files at start.
ACC_ADDED_COLUMNS = (("src_name", "VARCHAR(128)"), ("pai", "VARCHAR(255)"), ("trunk", "VARCHAR(512)"))

# seq is the stable delivery order; id the gateway-unique UUIDv7 the sinks dedupe on.
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

# Columns added to `cdrs` after the first release, added in place to older stores; then indexes
# that need them. trunk_call joins the ring-group legs of one inbound trunk call (capture.py).
CDRS_ADDED_COLUMNS = (("trunk_call", "TEXT"),)
CDRS_LATE_INDEXES = ("CREATE INDEX IF NOT EXISTS cdrs_trunk_call ON cdrs (trunk_call) WHERE trunk_call IS NOT NULL",)

CDR_SCHEMA = (
    CDRS_TABLE,
    OUTBOX_TABLE,
    SETTINGS_TABLE,
    "CREATE INDEX IF NOT EXISTS cdr_outbox_state ON cdr_outbox (sink, state, cdr_seq)",
    "CREATE INDEX IF NOT EXISTS cdrs_state ON cdrs (state, final_at)",
)
