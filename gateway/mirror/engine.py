"""The sync engine: fetch from a DirectorySource, check the result, and apply it to the store atomically.

A fetch that fails, is partial or does not pass the checks changes nothing: the last good mirror
stays in force and the error is recorded in the source's health. Deltas are merged with what the
store holds and then checked exactly like a full snapshot.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog

from gateway.mirror.errors import FetchError, MirrorError, PayloadError, RefusedError
from gateway.mirror.model import Batch, DirectoryEntry, Group
from gateway.mirror.records import SHORT_PASSWORD, Extension
from gateway.mirror.source import DirectorySource, Progress, no_progress
from gateway.store import Store

log = structlog.get_logger("mirror")

NUMBER = re.compile(r"^\+?[0-9*#]{1,32}$")
SIP_TOKEN = re.compile(r"^[A-Za-z0-9._~!$&'()*+,;=%-]{1,64}$")
LOGGED_NUMBERS = 20  # a directory of 4-digit PINs would otherwise log every extension
COMPARED = (
    *("auth_user", "realm", "ha1", "ha1_sha256", "display_name", "groups", "emergency_cid", "vendor_id"),
    *("location_address", "location_floor", "location_room"),
)


def state_key(source: str) -> str:
    """Where a source's health and cursor live in the state table."""
    return f"mirror.{source}"


@dataclass
class SyncResult:
    """What one sync did."""

    source: str
    full: bool
    unchanged: bool
    added: int = 0
    changed: int = 0
    deleted: int = 0
    total: int = 0
    groups: int = 0
    seconds: float = 0.0
    removed: list[str] = field(default_factory=list)
    short_passwords: list[str] = field(default_factory=list)  # numbers mirrored with a short password

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (without the lists of numbers: a count of short passwords instead)."""
        data = asdict(self)
        data.pop("removed")
        data["short_passwords"] = len(self.short_passwords)  # the list is in the health (state) only
        return data


def _entry_row(entry: DirectoryEntry) -> dict[str, Any]:
    ext = entry.extension
    return {
        "auth_user": ext.auth_user,
        "realm": ext.realm,
        "ha1": ext.ha1,
        "ha1_sha256": ext.ha1_sha256,
        "display_name": ext.display_name,
        "groups": json.dumps(list(ext.groups)),
        "emergency_cid": ext.emergency_cid,
        "vendor_id": entry.vendor_id,
        "location_address": ext.location_address,
        "location_floor": ext.location_floor,
        "location_room": ext.location_room,
    }


def _row_entry(row: dict[str, Any], short_password: bool = False) -> DirectoryEntry:
    ext = Extension(
        number=row["number"],
        auth_user=row["auth_user"],
        realm=row["realm"],
        ha1=row["ha1"],
        ha1_sha256=row["ha1_sha256"],
        display_name=row["display_name"] or "",
        groups=tuple(json.loads(row["groups"] or "[]")),
        emergency_cid=row["emergency_cid"] or "",
        source=row["source"],
        location_address=row.get("location_address") or "",
        location_floor=row.get("location_floor") or "",
        location_room=row.get("location_room") or "",
    )
    return DirectoryEntry(row["vendor_id"] or row["number"], ext, row["vendor_updated_at"] or "", short_password)


def content_hash(entries: list[DirectoryEntry], groups: tuple[Group, ...] | None) -> str:
    """A digest of everything that matters in a directory (HA1s included, so a new password changes it)."""
    doc = {
        "entries": sorted([e.extension.number, *_entry_row(e).values()] for e in entries),
        "groups": None if groups is None else sorted([g.number, g.name, list(g.members)] for g in groups),
    }
    return hashlib.sha256(json.dumps(doc, separators=(",", ":")).encode()).hexdigest()


def _duplicates(values: list[str]) -> list[str]:
    return sorted(v for v, n in Counter(values).items() if n > 1)


def check_directory(entries: list[DirectoryEntry], groups: tuple[Group, ...] | None, realm: str) -> None:
    """Refuse a directory Lifeline could not serve: duplicates, or extensions in another realm."""
    problems = []
    bad = [e.extension.number for e in entries if not NUMBER.match(e.extension.number)]
    bad += [e.extension.auth_user for e in entries if not SIP_TOKEN.match(e.extension.auth_user)]
    if bad:
        problems.append(f"not a dialable number or SIP user name: {', '.join(repr(b) for b in bad[:5])}")
    for what, values in (
        ("number", [e.extension.number for e in entries]),
        ("auth user", [e.extension.auth_user for e in entries]),
        ("vendor id", [e.vendor_id for e in entries]),
    ):
        dups = _duplicates(values)
        if dups:
            problems.append(f"duplicate {what}(s): {', '.join(dups[:5])}" + (" …" if len(dups) > 5 else ""))
    if groups is not None:
        numbers = {e.extension.number for e in entries}
        clash = sorted(g.number for g in groups if g.number in numbers)
        if clash:
            problems.append(f"group number(s) also used by an extension: {', '.join(clash[:5])}")
        dups = _duplicates([g.number for g in groups])
        if dups:
            problems.append(f"duplicate group number(s): {', '.join(dups[:5])}")
    if problems:
        raise PayloadError("; ".join(problems))
    other = Counter(e.extension.realm for e in entries if e.extension.realm != realm)
    if other:
        new_realm, count = other.most_common(1)[0]
        example = next(e.extension.number for e in entries if e.extension.realm == new_realm)
        raise RefusedError(
            f"realm changed: {count} extension(s) (e.g. {example}) are in realm {new_realm!r}, but Lifeline "
            f"challenges phones with {realm!r} (cloud.realm), so they could not authenticate; "
            f"set cloud.realm to {new_realm!r} if the PBX really moved"
        )


class SyncEngine:
    """Runs syncs of one source into the store."""

    def __init__(self, store: Store, source: DirectorySource, realm: str, deadline_s: float = 600.0) -> None:
        self.store = store
        self.deadline_s = deadline_s
        self.source = source
        self.realm = realm
        self.key = state_key(source.name)

    def health(self) -> dict[str, Any]:
        """The persisted health of this source (empty before the first sync)."""
        return dict(self.store.get_state(self.key, {}) or {})

    async def run(
        self, *, full: bool = False, allow_empty: bool = False, progress: Progress = no_progress
    ) -> SyncResult:
        """One sync; MirrorError (recorded in the health, the mirror untouched) when it fails."""
        started = time.monotonic()
        state = await asyncio.to_thread(self.health)
        state["last_attempt"] = time.time()
        short_before = set(state.get("short_passwords") or [])
        try:
            cursor = None if full else state.get("cursor")
            try:
                async with asyncio.timeout(self.deadline_s):
                    batch = await self.source.fetch(cursor, progress)
            except TimeoutError as err:
                raise FetchError(f"the directory took longer than {self.deadline_s:g} s in all; gave up") from err
            result = await asyncio.to_thread(self._apply, batch, state, allow_empty, started)
        except MirrorError as err:
            await asyncio.to_thread(self._record_error, state, str(err))
            raise
        log.info("directory synced", **result.as_dict())
        new_short = sorted(set(result.short_passwords) - short_before)
        if new_short:
            # Mirrored all the same: the cloud sets the password policy (the passwords never reach a log).
            log.warning(
                "short passwords mirrored",
                shorter_than=SHORT_PASSWORD,
                source=self.source.name,
                count=len(new_short),
                extensions=new_short[:LOGGED_NUMBERS],
            )
        if result.added or result.changed or result.deleted:
            await asyncio.to_thread(
                self.store.add_event,
                "mirror_sync",
                f"{self.source.name}: +{result.added} ~{result.changed} -{result.deleted}, {result.total} in all",
                result.as_dict(),
            )
        return result

    def _record_error(self, state: dict[str, Any], message: str) -> None:
        log.error("directory sync failed; the last good mirror stays", source=self.source.name, error=message)
        state["last_error"] = message
        state["last_error_at"] = time.time()
        self.store.set_state(self.key, state)
        self.store.add_event("mirror_error", f"{self.source.name}: {message}", {"source": self.source.name})

    def _apply(self, batch: Batch, state: dict[str, Any], allow_empty: bool, started: float) -> SyncResult:
        rows = self.store.mirror_rows(self.source.name)
        existing = {r["number"]: r for r in rows}
        if batch.not_modified:
            result = SyncResult(self.source.name, batch.full, True, total=len(existing), groups=state.get("groups", 0))
            result.short_passwords = list(state.get("short_passwords") or [])
            result.seconds = round(time.monotonic() - started, 3)
            self._commit([], [], None, batch, state, state.get("hash", ""), result)
            return result
        if batch.full:
            entries = list(batch.entries)
        else:
            # Kept entries keep their flag: a delta does not resend an unchanged password.
            short_before = set(state.get("short_passwords") or [])
            merged = {r["vendor_id"] or r["number"]: _row_entry(r, r["number"] in short_before) for r in rows}
            for stone in batch.tombstones:
                merged.pop(stone.vendor_id, None)
            for entry in batch.entries:
                merged[entry.vendor_id] = entry
            entries = list(merged.values())
        check_directory(entries, batch.groups, self.realm)
        if not entries and existing and not allow_empty:
            raise RefusedError(
                f"the directory is empty: refusing to delete all {len(existing)} mirrored extension(s) "
                "(run `lifeline mirror sync --allow-empty` if that is really meant)"
            )
        groups = batch.groups
        digest = content_hash(entries, groups if groups is not None else None)
        result = SyncResult(self.source.name, batch.full, digest == state.get("hash"))
        upserts = []
        for entry in entries:
            old = existing.pop(entry.extension.number, None)
            new = _entry_row(entry)
            if old is None:
                result.added += 1
            elif any(old[k] != new[k] for k in COMPARED):
                result.changed += 1
            else:
                continue
            upserts.append((entry.vendor_id, entry.updated_at, entry.extension))
        result.removed = sorted(existing)
        result.deleted = len(result.removed)
        result.total = len(entries)
        result.short_passwords = sorted(e.extension.number for e in entries if e.short_password)
        result.groups = len(groups) if groups is not None else int(state.get("groups", 0))
        # Measured before the commit so the stored result carries it (the commit itself is a few ms).
        result.seconds = round(time.monotonic() - started, 3)
        self._commit(upserts, result.removed, groups, batch, state, digest, result)
        return result

    def _commit(
        self,
        upserts: list[tuple[str, str, Extension]],
        deletes: list[str],
        groups: tuple[Group, ...] | None,
        batch: Batch,
        state: dict[str, Any],
        digest: str,
        result: SyncResult,
    ) -> None:
        state.update(
            {
                "cursor": batch.cursor,
                "hash": digest,
                "last_ok": time.time(),
                "last_error": None,
                "extensions": result.total,
                "groups": result.groups,
                "last_result": result.as_dict(),
                "short_passwords": result.short_passwords,
            }
        )
        self.store.apply_mirror(
            self.source.name,
            upserts=upserts,
            delete_numbers=deletes,
            groups=None if groups is None else [(g.number, g.name, g.vendor_id, g.members) for g in groups],
            state_key=self.key,
            state=state,
        )
