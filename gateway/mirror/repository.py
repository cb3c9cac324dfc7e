"""The mirror's reads for other capabilities: an extension's digest, names, location (its SQL only here)."""

from __future__ import annotations

import sqlite3
from typing import Any, Literal


def _marks(values: list[str]) -> str:
    return ",".join("?" * len(values))


def sip_credentials(
    conn: sqlite3.Connection, number: str, algorithm: Literal["MD5", "SHA-256"]
) -> tuple[str, str, str] | None:
    """(auth user, realm, digest for the algorithm) of an extension, None if there is no such extension."""
    column = "ha1" if algorithm == "MD5" else "ha1_sha256"
    row = conn.execute(f"SELECT auth_user, realm, {column} FROM extensions WHERE number = ?", [number]).fetchone()
    return None if row is None else (str(row[0]), str(row[1]), str(row[2]))


def digests(conn: sqlite3.Connection, numbers: list[str]) -> dict[str, dict[str, Any]]:
    """These extensions' number, auth user, realm and both digests, by number."""
    cursor = conn.execute(
        f"SELECT number, auth_user, realm, ha1, ha1_sha256 FROM extensions WHERE number IN ({_marks(numbers)})",
        numbers,
    )
    names = [d[0] for d in cursor.description]
    return {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}


def display_names(conn: sqlite3.Connection, numbers: list[str]) -> dict[str, str]:
    """The directory's names of these numbers (those that have one)."""
    rows = conn.execute(
        f"SELECT number, display_name FROM extensions WHERE number IN ({_marks(numbers)})", numbers
    ).fetchall()
    return {str(n): str(d) for n, d in rows if d}


def emergency_details(conn: sqlite3.Connection, number: str) -> tuple[str, str, str, str, str] | None:
    """(display name, emergency caller ID, address, floor, room) of an extension, blanks for unset; None if unknown."""
    row = conn.execute(
        "SELECT display_name, emergency_cid, location_address, location_floor, location_room"
        " FROM extensions WHERE number = ?",
        [number],
    ).fetchone()
    if row is None:
        return None
    name, cid, address, floor, room = (str(value or "") for value in row)
    return name, cid, address, floor, room


def count_extensions(conn: sqlite3.Connection) -> int:
    """How many extensions there are."""
    return int(conn.execute("SELECT COUNT(*) FROM extensions").fetchone()[0])


def count_ring_groups(conn: sqlite3.Connection) -> int:
    """How many ring groups there are."""
    return int(conn.execute("SELECT COUNT(*) FROM ring_groups").fetchone()[0])
