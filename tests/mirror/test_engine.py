"""The sync engine against the fake Lifeline directory API: full, incremental, atomic, and never a clear password."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import structlog

from gateway.mirror.engine import SyncEngine
from gateway.mirror.errors import RefusedError
from gateway.mirror.records import ha1_md5
from gateway.store import Store
from tests.mirror.conftest import PASSWORDS, REALM, lifeline_source
from tests.mirror.fakes import FakeLifelineApi, lifeline_record


def subscribers(store: Store) -> dict[str, str]:
    """What Kamailio's auth_db sees: username -> ha1."""
    return {r["username"]: r["ha1"] for r in store.db.query("SELECT username, ha1 FROM subscriber")}


async def test_full_sync_stores_ha1_only_and_never_logs_a_password(
    store: Store, fake_api: FakeLifelineApi, api_url: str, tmp_path: Path
) -> None:
    engine = SyncEngine(store, lifeline_source(api_url), REALM)
    seen: list[tuple[int, int | None]] = []
    with structlog.testing.capture_logs() as logs:
        result = await engine.run(progress=lambda done, total: seen.append((done, total)))
    assert (result.full, result.added, result.total) == (True, 3, 3)
    assert subscribers(store) == {n: ha1_md5(n, REALM, p) for n, p in PASSWORDS.items()}
    assert seen[-1] == (3, 3) and len(seen) == 2  # two pages of two
    everything = repr(logs) + json.dumps(store.recent_events(50)) + json.dumps(store.get_state("mirror.lifeline"))
    store.db.execute("PRAGMA wal_checkpoint(FULL)")
    on_disk = b"".join(p.read_bytes() for p in tmp_path.glob("lifeline.db*"))  # noqa: ASYNC240
    for password in PASSWORDS.values():
        assert password not in everything
        assert password.encode() not in on_disk
    assert store.count_by_source() == {"lifeline": 3}


async def test_unchanged_directory_answers_304_and_changes_nothing(
    store: Store, fake_api: FakeLifelineApi, api_url: str
) -> None:
    engine = SyncEngine(store, lifeline_source(api_url), REALM)
    await engine.run()
    before = store.mirror_rows("lifeline")
    result = await engine.run()
    assert result.unchanged and (result.added, result.changed, result.deleted) == (0, 0, 0)
    _method, _path, headers = fake_api.requests[-1]
    assert headers.get("If-None-Match") == f'"v{fake_api.version}"'
    assert store.mirror_rows("lifeline") == before


async def test_incremental_sync_applies_changes_and_tombstones(
    store: Store, fake_api: FakeLifelineApi, api_url: str
) -> None:
    engine = SyncEngine(store, lifeline_source(api_url), REALM)
    await engine.run()
    fake_api.put(lifeline_record("2002", "a-new-password-2002"))
    fake_api.delete("id-2003")
    fake_api.put(lifeline_record("2004", "fourth-secret-2004", emergency_cid="+4930123456"))
    result = await engine.run()
    assert (result.full, result.added, result.changed, result.deleted) == (False, 1, 1, 1)
    assert result.removed == ["2003"]
    assert "since=" in fake_api.requests[-1][1]
    subs = subscribers(store)
    assert set(subs) == {"2001", "2002", "2004"}
    assert subs["2002"] == ha1_md5("2002", REALM, "a-new-password-2002")
    assert store.get_state("mirror.lifeline")["extensions"] == 3


async def test_expired_cursor_falls_back_to_a_full_listing(
    store: Store, fake_api: FakeLifelineApi, api_url: str
) -> None:
    engine = SyncEngine(store, lifeline_source(api_url), REALM)
    await engine.run()
    fake_api.delete("id-2001")
    fake_api.oldest_cursor = fake_api.version + 1  # the server forgot every older cursor
    result = await engine.run()
    assert result.full and result.removed == ["2001"]
    assert set(subscribers(store)) == {"2002", "2003"}


async def test_empty_directory_is_refused_unless_allowed(store: Store, fake_api: FakeLifelineApi, api_url: str) -> None:
    engine = SyncEngine(store, lifeline_source(api_url), REALM)
    await engine.run(full=True)
    for vid in list(fake_api.records):
        fake_api.delete(vid)
    with pytest.raises(RefusedError, match=r"empty: refusing to delete all 3 mirrored extension\(s\)"):
        await engine.run(full=True)
    assert len(subscribers(store)) == 3
    assert "empty" in store.get_state("mirror.lifeline")["last_error"]
    result = await engine.run(full=True, allow_empty=True)
    assert result.deleted == 3 and subscribers(store) == {}


async def test_ha1_carried_instead_of_a_password_is_stored_as_given(
    store: Store, fake_api: FakeLifelineApi, api_url: str
) -> None:
    digest = ha1_md5("2005", REALM, "never-seen-by-lifeline")
    fake_api.put({"id": "id-2005", "number": "2005", "ha1": digest, "ha1_sha256": "ab" * 32})
    await SyncEngine(store, lifeline_source(api_url), REALM).run()
    assert subscribers(store)["2005"] == digest


async def test_groups_are_mirrored_with_their_members(store: Store, fake_api: FakeLifelineApi, api_url: str) -> None:
    fake_api.set_groups([{"id": "g1", "number": "600", "name": "Sales", "members": ["2001", "2002"]}])
    result = await SyncEngine(store, lifeline_source(api_url), REALM).run()
    assert result.groups == 1
    assert store.ring_groups() == [
        {"number": "600", "name": "Sales", "members": ["2001", "2002"], "source": "lifeline", "vendor_id": "g1"}
    ]


async def test_an_imported_file_and_the_mirror_keep_their_own_rows(
    store: Store, fake_api: FakeLifelineApi, api_url: str
) -> None:
    from gateway.mirror.records import Extension

    store.replace_extensions(
        [Extension.from_password(number="3001", auth_user="3001", realm=REALM, password="p" * 10)], "import:x.csv"
    )
    engine = SyncEngine(store, lifeline_source(api_url), REALM)
    await engine.run()
    for vid in list(fake_api.records):
        fake_api.delete(vid)
    await engine.run(full=True, allow_empty=True)
    assert set(subscribers(store)) == {"3001"}  # the mirror deletes only what it brought
