-- A lifeline.db as Lifeline f86024c (2026-11-25 ring groups) created it, with a few rows; every
-- release up to 2026-11-30 labelled its database user_version 1, whatever its shape.
PRAGMA user_version=1;
BEGIN TRANSACTION;
CREATE TABLE "alerts" (
   "id" INTEGER PRIMARY KEY,
   "alert_id" TEXT,
   "channel" TEXT,
   "payload" TEXT,
   "created" REAL,
   "attempts" INTEGER,
   "next_at" REAL,
   "delivered_at" REAL,
   "last_error" TEXT
);
INSERT INTO "alerts" VALUES(1,'a1','webhook','{"type":"mode.survival"}',1764000003.0,0,1764000003.0,NULL,NULL);
CREATE TABLE cdr_outbox (
    sink TEXT NOT NULL,
    cdr_seq INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    updated_at REAL,
    PRIMARY KEY (sink, cdr_seq)
) WITHOUT ROWID
;
INSERT INTO "cdr_outbox" VALUES('cloud',1,'pending',0,NULL,NULL);
CREATE TABLE cdr_settings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key_name VARCHAR(64) NOT NULL UNIQUE,
    key_type INTEGER NOT NULL DEFAULT 0,
    value_type INTEGER NOT NULL DEFAULT 0,
    key_value VARCHAR(128) NOT NULL DEFAULT '',
    expires INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE cdrs (
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
    mode TEXT NOT NULL DEFAULT 'survival',
    final_at REAL,
    UNIQUE (call_id, from_tag)
);
INSERT INTO "cdrs" VALUES(1,'0192f3a0-0000-7000-8000-000000000001','call-1@lan','t1','final',1764000002.0,NULL,NULL,NULL,NULL,NULL,'','ntp','201','202',NULL,NULL,'internal','answered',NULL,NULL,NULL,'survival',1764000010.0);
CREATE TABLE "events" (
   "id" INTEGER PRIMARY KEY,
   "ts" REAL,
   "kind" TEXT,
   "message" TEXT,
   "data" TEXT
);
INSERT INTO "events" VALUES(1,1764000001.0,'mode','NORMAL -> SURVIVAL: the cloud is gone','{}');
CREATE TABLE "extensions" (
   "number" TEXT PRIMARY KEY,
   "auth_user" TEXT NOT NULL,
   "realm" TEXT NOT NULL,
   "ha1" TEXT NOT NULL,
   "ha1_sha256" TEXT NOT NULL,
   "display_name" TEXT,
   "groups" TEXT,
   "emergency_cid" TEXT,
   "source" TEXT,
   "updated_at" REAL
, vendor_id TEXT NOT NULL DEFAULT '', vendor_updated_at TEXT NOT NULL DEFAULT '');
INSERT INTO "extensions" VALUES('201','201','cloud.test','00000000000000000000000000000000','1111111111111111111111111111111111111111111111111111111111111111','Front desk','[]','','phones.csv',1764000000.0,'','');
CREATE TABLE "ring_groups" (
   "number" TEXT PRIMARY KEY,
   "name" TEXT,
   "members" TEXT NOT NULL,
   "source" TEXT NOT NULL,
   "vendor_id" TEXT
);
CREATE TABLE "state" (
   "key" TEXT PRIMARY KEY,
   "value" TEXT
);
INSERT INTO "state" VALUES('mode.override','"survival"');
CREATE UNIQUE INDEX "idx_extensions_auth_user"
    ON "extensions" ("auth_user");
CREATE VIEW kamailio_groups AS
SELECT g.number AS number, (SELECT group_concat(value, ',') FROM json_each(g.members)) AS members
FROM ring_groups g;
CREATE INDEX "idx_alerts_delivered_at_next_at"
    ON "alerts" ("delivered_at", "next_at");
CREATE VIEW subscriber AS
SELECT auth_user AS username, realm AS domain, ha1, ha1_sha256, number
FROM extensions;
CREATE VIEW numbers AS
SELECT number AS username, realm AS domain, ha1, ha1_sha256, number
FROM extensions;
CREATE INDEX cdr_outbox_state ON cdr_outbox (sink, state, cdr_seq);
CREATE INDEX cdrs_state ON cdrs (state, final_at);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('cdrs',1);
COMMIT;
