"""The directory mirror's tables (extensions, ring_groups), as each schema version left them."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping

# Keyed by the vendor's stable id (tombstones name it), with the vendor's own updated-at and the
# emergency location; added in place so older stores keep their rows.
_V2_COLUMNS = ("vendor_id", "vendor_updated_at", "location_address", "location_floor", "location_room")


def _v1(conn: sqlite3.Connection) -> None:
    """Extensions with HA1 digests only, one row per number, auth users unique."""
    conn.execute(
        'CREATE TABLE IF NOT EXISTS "extensions" ("number" TEXT PRIMARY KEY, "auth_user" TEXT NOT NULL,'
        ' "realm" TEXT NOT NULL, "ha1" TEXT NOT NULL, "ha1_sha256" TEXT NOT NULL, "display_name" TEXT,'
        ' "groups" TEXT, "emergency_cid" TEXT, "source" TEXT, "updated_at" REAL)'
    )
    conn.execute('CREATE UNIQUE INDEX IF NOT EXISTS "idx_extensions_auth_user" ON "extensions" ("auth_user")')


def _v2(conn: sqlite3.Connection) -> None:
    """Vendor ids, vendor timestamps and locations on extensions; ring groups."""
    have = {row[1] for row in conn.execute('PRAGMA table_info("extensions")')}
    for name in _V2_COLUMNS:
        if name not in have:
            conn.execute(f"ALTER TABLE extensions ADD COLUMN {name} TEXT NOT NULL DEFAULT ''")
    conn.execute(
        'CREATE TABLE IF NOT EXISTS "ring_groups" ("number" TEXT PRIMARY KEY, "name" TEXT,'
        ' "members" TEXT NOT NULL, "source" TEXT NOT NULL, "vendor_id" TEXT)'
    )


STEPS: Mapping[int, Callable[[sqlite3.Connection], None]] = {1: _v1, 2: _v2}
