-- A lifeline.db as Lifeline 2d34603 (schema version 2, 2026-12-01) left it: a few rows, and the API
-- token table the daemon made on first use (version 2 kept it outside the schema's history).
PRAGMA user_version=2;
BEGIN TRANSACTION;
CREATE TABLE "alerts" ("id" INTEGER PRIMARY KEY, "alert_id" TEXT, "channel" TEXT, "payload" TEXT, "created" REAL, "attempts" INTEGER, "next_at" REAL, "delivered_at" REAL, "last_error" TEXT);
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    scope TEXT NOT NULL,
    digest TEXT NOT NULL,
    created_at REAL NOT NULL,
    revoked_at REAL,
    last_used_at REAL,
    last_used_from TEXT
);
INSERT INTO "api_tokens" VALUES('ta9beea8431','vendor-noc','read','5b61f1e676c74173b7e6d4754b33d789a5ead4c54f03c16cc0b571b0222a6959',1.7960946329007163048e+09,NULL,NULL,NULL);
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
    trunk_call TEXT,
    mode TEXT NOT NULL DEFAULT 'survival',
    final_at REAL,
    UNIQUE (call_id, from_tag)
);
CREATE TABLE "events" ("id" INTEGER PRIMARY KEY, "ts" REAL, "kind" TEXT, "message" TEXT, "data" TEXT);
INSERT INTO "events" VALUES(1,1.79609463289972257613e+09,'mode','NORMAL -> SURVIVAL: the cloud is gone','{}');
INSERT INTO "events" VALUES(2,1.79609463290125274653e+09,'api','API token ta9beea8431 (''vendor-noc'', read) created by the CLI (no daemon running)','{"id": "ta9beea8431", "name": "vendor-noc", "scope": "read", "created_at": 1796094632.9007163, "revoked_at": null, "last_used_at": null, "last_used_from": null}');
CREATE TABLE "extensions" ("number" TEXT PRIMARY KEY, "auth_user" TEXT NOT NULL, "realm" TEXT NOT NULL, "ha1" TEXT NOT NULL, "ha1_sha256" TEXT NOT NULL, "display_name" TEXT, "groups" TEXT, "emergency_cid" TEXT, "source" TEXT, "updated_at" REAL, vendor_id TEXT NOT NULL DEFAULT '', vendor_updated_at TEXT NOT NULL DEFAULT '', location_address TEXT NOT NULL DEFAULT '', location_floor TEXT NOT NULL DEFAULT '', location_room TEXT NOT NULL DEFAULT '');
INSERT INTO "extensions" VALUES('201','201','cloud.test','ff220bedcc769a85b4da24d38967c2b1','389ea1b0d111a63a3ca6d050577a22957a8917fa2b414ebe03414fec2884b88f','Front desk','[]','','import',1.79609463289775133135e+09,'','','','','');
CREATE TABLE "ring_groups" ("number" TEXT PRIMARY KEY, "name" TEXT, "members" TEXT NOT NULL, "source" TEXT NOT NULL, "vendor_id" TEXT);
CREATE TABLE "state" ("key" TEXT PRIMARY KEY, "value" TEXT);
INSERT INTO "state" VALUES('mode.override','"survival"');
CREATE UNIQUE INDEX "idx_extensions_auth_user" ON "extensions" ("auth_user");
CREATE VIEW subscriber AS
SELECT auth_user AS username, realm AS domain, ha1, ha1_sha256, number
FROM extensions;
CREATE INDEX "idx_alerts_delivered_at_next_at" ON "alerts" ("delivered_at", "next_at");
CREATE INDEX cdr_outbox_state ON cdr_outbox (sink, state, cdr_seq);
CREATE INDEX cdrs_state ON cdrs (state, final_at);
CREATE INDEX cdrs_trunk_call ON cdrs (trunk_call) WHERE trunk_call IS NOT NULL;
CREATE VIEW numbers AS
SELECT number AS username, realm AS domain, ha1, ha1_sha256, number
FROM extensions;
CREATE VIEW kamailio_groups AS
SELECT g.number AS number, (SELECT group_concat(value, ',') FROM json_each(g.members)) AS members
FROM ring_groups g;
DELETE FROM "sqlite_sequence";
COMMIT;
