-- A lifeline.db as Lifeline a12ed46 (2026-11-25 first release) created it, with a few rows; every
-- release up to 2026-11-30 labelled its database user_version 1, whatever its shape.
PRAGMA user_version=1;
BEGIN TRANSACTION;
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
);
INSERT INTO "extensions" VALUES('201','201','cloud.test','00000000000000000000000000000000','1111111111111111111111111111111111111111111111111111111111111111','Front desk','[]','','phones.csv',1764000000.0);
CREATE TABLE "state" (
   "key" TEXT PRIMARY KEY,
   "value" TEXT
);
INSERT INTO "state" VALUES('mode.override','"survival"');
CREATE UNIQUE INDEX "idx_extensions_auth_user"
    ON "extensions" ("auth_user");
CREATE VIEW subscriber AS
SELECT auth_user AS username, realm AS domain, ha1, ha1_sha256, number
FROM extensions;
COMMIT;
