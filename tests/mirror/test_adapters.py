"""Each vendor adapter against a fake server that answers with the vendor's documented payloads."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import web

from gateway import config as config_mod
from gateway.cli.mirror_cmd import status_lines
from gateway.mirror.build import build_source
from gateway.mirror.engine import SyncEngine
from gateway.mirror.errors import FetchError, PayloadError
from gateway.mirror.records import ha1_md5
from gateway.mirror.service import MirrorService
from gateway.store import Store
from tests.mirror.conftest import PASSWORDS, REALM
from tests.mirror.fakes import FakeFreePbx, FakeKazoo, FakeWazo, LifelineVendor, running

VENDORS: dict[str, Any] = {
    "lifeline": lambda: LifelineVendor(PASSWORDS),
    "freepbx": FakeFreePbx,
    "kazoo": FakeKazoo,
    "wazo": FakeWazo,
}


def engine_for(store: Store, mirror: dict[str, Any]) -> SyncEngine:
    config = config_mod.parse({"cloud": {"realm": REALM}, "mirror": {**mirror, "timeout_s": 5}})
    source = build_source(config)
    assert source is not None
    return SyncEngine(store, source, REALM)


def ha1s(store: Store) -> dict[str, str]:
    return {r["number"]: r["ha1"] for r in store.mirror_rows(store_source(store))}


def store_source(store: Store) -> str:
    return next(iter(store.count_by_source()))


@pytest.mark.parametrize("vendor", list(VENDORS))
async def test_adapter_mirrors_changes_and_deletions(vendor: str, store: Store) -> None:
    fake = VENDORS[vendor]()
    async with running(fake.app) as url:
        engine = engine_for(store, fake.mirror_config(url))
        first = await engine.run()
        assert (first.added, first.total) == (3, 3)
        assert ha1s(store) == {n: ha1_md5(n, REALM, p) for n, p in PASSWORDS.items()}
        fake.set_password("2002", "changed-secret-2002")
        fake.remove("2003")
        second = await engine.run()
        assert (second.added, second.changed, second.deleted) == (0, 1, 1)
        assert ha1s(store) == {
            "2001": ha1_md5("2001", REALM, PASSWORDS["2001"]),
            "2002": ha1_md5("2002", REALM, "changed-secret-2002"),
        }
        third = await engine.run()
        assert third.unchanged


@pytest.mark.parametrize("vendor", list(VENDORS))
async def test_adapter_reports_refused_credentials(vendor: str, store: Store) -> None:
    fake = VENDORS[vendor]()
    async with running(fake.app) as url:
        mirror = fake.mirror_config(url)
        for key in ("token", "client_secret", "api_key"):
            if key in mirror:
                mirror[key] = "wrong"
        with pytest.raises(FetchError, match="HTTP 401 Unauthorized: the credentials were refused"):
            await engine_for(store, mirror).run()


async def test_kazoo_names_from_users_emergency_cid_and_disabled_devices(store: Store) -> None:
    fake = FakeKazoo()
    async with running(fake.app) as url:
        await engine_for(store, fake.mirror_config(url)).run()
    rows = {r["number"]: r for r in store.mirror_rows("kazoo")}
    assert set(rows) == {"2001", "2002", "2003"}  # the disabled fax is not mirrored
    assert rows["2001"]["display_name"] == "Anna Front" and rows["2001"]["emergency_cid"] == "+4930123456"
    assert rows["2002"]["realm"] == REALM  # no sip.realm on the device: the account's realm
    assert rows["2001"]["vendor_id"] == "d0000000000000000000000000002001"


def locations(store: Store, source: str) -> dict[str, tuple[str, str, str, str]]:
    """number -> (emergency_cid, location_address, location_floor, location_room) as stored."""
    return {
        r["number"]: (r["emergency_cid"], r["location_address"], r["location_floor"], r["location_room"])
        for r in store.mirror_rows(source)
    }


async def test_kazoo_location_is_the_e911_address_of_the_emergency_caller_id(store: Store) -> None:
    fake = FakeKazoo()
    fake.devices["d0000000000000000000000000002002"]["caller_id"]["emergency"] = {"number": "Branch"}  # no number
    async with running(fake.app) as url:
        engine = engine_for(store, fake.mirror_config(url))
        await engine.run()
        assert locations(store, "kazoo") == {
            "2001": ("+4930123456", "Hauptstr. 1, 2nd floor, room 204, Berlin, BE 10115", "", ""),
            "2002": ("", "", "", ""),
            "2003": ("+4930123499", "", "", ""),  # not one of the account's numbers (404): no address
        }
        lookups = sorted(path for _, path, _ in fake.requests if "/phone_numbers/" in path)
        assert [p.rsplit("/", 1)[1] for p in lookups] == ["%2B4930123456", "%2B4930123499"]  # one per number
        # Only the legacy fields, as older E911 provisioning left them: Kazoo's own fallback.
        fake.phone_numbers["+4930123456"]["e911"] = {
            "legacy_data": {"house_number": "1", "streetname": "HAUPTSTR", "suite": "RM 204"},
            "locality": "BERLIN", "postal_code": "10115",
        }  # fmt: skip
        assert (await engine.run()).changed == 1
        assert locations(store, "kazoo")["2001"][1] == "1 HAUPTSTR, RM 204, BERLIN, 10115"


@pytest.mark.parametrize(
    ("e911", "error"),
    [
        (
            {"street_address": "Hauptstr. 1" * 20, "locality": "Berlin"},
            r"data\.e911: the address has 228 characters, over 200",
        ),
        (
            {"street_address": 1, "locality": "Berlin"},
            r"data\.e911\.street_address: Input should be a valid string \(got int\)",
        ),
        (
            {"legacy_data": ["1", "HAUPTSTR"]},
            r"data\.e911\.legacy_data: Input should be a valid dictionary.* \(got list\)",
        ),
    ],
)
async def test_kazoo_bad_e911_address_is_a_clear_error(e911: dict[str, Any], error: str, store: Store) -> None:
    fake = FakeKazoo()
    fake.phone_numbers["+4930123456"]["e911"] = e911
    async with running(fake.app) as url:
        with pytest.raises(
            PayloadError, match=r"GET http://127\.0\.0\.1:\d+/v2/accounts/\w+/phone_numbers/%2B4930123456: " + error
        ):
            await engine_for(store, fake.mirror_config(url)).run()
    assert store.mirror_rows("kazoo") == []  # nothing half-applied


async def test_freepbx_emergency_cid_in_either_form_garbage_dropped_and_no_location(store: Store) -> None:
    fake = FakeFreePbx()
    async with running(fake.app) as url:
        engine = engine_for(store, fake.mirror_config(url))
        await engine.run()
        # FreePBX core has no address, floor or room for an extension: only the emergency caller ID.
        assert locations(store, "freepbx") == {
            "2001": ("+4930123456", "", "", ""),
            "2002": ("+4930123400", "", "", ""),  # from "Branch Office" <+4930123400>
            "2003": ("", "", "", ""),  # null
        }
        devices = {i["extensionId"]: i["coreDevice"] for i in fake.items}
        devices["2001"]["emergencyCid"] = "anonymous"
        devices["2002"]["emergencyCid"] = "+" + "4" * 32  # longer than the 32 characters the CSV and API allow
        devices["2003"]["emergencyCid"] = "+49 30 123456"  # not a bare number: nothing to present as is
        assert (await engine.run()).changed == 2  # dropped, never an error: the extensions stay mirrored
        assert {n: row[0] for n, row in locations(store, "freepbx").items()} == {"2001": "", "2002": "", "2003": ""}


async def test_wazo_has_no_emergency_cid_or_location(store: Store) -> None:
    fake = FakeWazo()
    async with running(fake.app) as url:
        await engine_for(store, fake.mirror_config(url)).run()
    # Confd carries neither; Anna's outgoing_caller_id is her caller ID on every outgoing call, not taken for one.
    assert set(locations(store, "wazo").values()) == {("", "", "", "")}


async def test_kazoo_device_in_another_realm_is_refused(store: Store) -> None:
    fake = FakeKazoo()
    fake.devices["d0000000000000000000000000002002"]["sip"]["realm"] = "other.sip.example.com"
    async with running(fake.app) as url:
        with pytest.raises(Exception, match=r"realm changed: 1 extension\(s\) \(e\.g\. 2002\)"):
            await engine_for(store, fake.mirror_config(url)).run()
    assert store.mirror_rows("kazoo") == []


async def test_wazo_groups_become_ring_groups_of_line_numbers(store: Store) -> None:
    fake = FakeWazo()
    async with running(fake.app) as url:
        result = await engine_for(store, fake.mirror_config(url)).run()
    assert result.groups == 1
    [group] = store.ring_groups()
    assert (group["number"], group["name"], group["members"]) == ("600", "Sales", ["2001", "2002"])
    names = {r["number"]: r["display_name"] for r in store.mirror_rows("wazo")}
    assert names == {"2001": "Anna Front", "2002": "Ben Back", "2003": "Cleo"}


async def test_wazo_endpoint_without_password_is_a_clear_error(store: Store) -> None:
    fake = FakeWazo()
    fake.endpoints["e0000000-0000-4000-8000-000000002002"]["auth_section_options"] = [["username", "2002"]]
    async with running(fake.app) as url:
        with pytest.raises(
            PayloadError, match=r"endpoint e0000000-0000-4000-8000-000000002002 \(line 12\): .*password"
        ):
            await engine_for(store, fake.mirror_config(url)).run()


async def test_freepbx_graphql_error_and_wrong_count_are_clear_errors(store: Store) -> None:
    fake = FakeFreePbx()

    async def gql_error(request: web.Request) -> web.StreamResponse | None:
        if request.path.endswith("/gql"):
            return web.json_response({"errors": [{"message": 'Cannot query field "extPassword" on type "coreuser"'}]})
        return None

    async with running(fake.app) as url:
        engine = engine_for(store, fake.mirror_config(url))
        fake.fault = gql_error
        with pytest.raises(PayloadError, match=r'GraphQL error: Cannot query field "extPassword"'):
            await engine.run()
        fake.fault = None
        fake.reply["data"]["fetchAllExtensions"]["totalCount"] = 7
        with pytest.raises(PayloadError, match="totalCount is 7 but 3 extensions came"):
            await engine.run()
        assert fake.tokens  # a token was fetched with the client credentials each time


async def test_file_source_is_diffed_by_content(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "phones.csv"
    path.write_text("number,password,name\n" + "".join(f"{n},{p},Ext {n}\n" for n, p in PASSWORDS.items()))
    engine = engine_for(store, {"source": "file", "file": str(path)})
    assert (await engine.run()).added == 3
    assert (await engine.run()).unchanged
    path.write_text("number,password\n2001,\n")
    with pytest.raises(PayloadError, match=r"line 2: column 2 \(password\): String should have at least 1"):
        await engine.run()
    assert len(store.mirror_rows("file")) == 3
    path.write_text(f"2001,{PASSWORDS['2001']}\n")  # no header row: refused, the first row never echoed
    with pytest.raises(PayloadError, match=r"line 1: no header row") as err:
        await engine.run()
    assert PASSWORDS["2001"] not in str(err.value) and len(store.mirror_rows("file")) == 3


class FileVendor:
    """A CSV file as the directory, with the vendor fakes' editing interface (no server needed)."""

    kind = "file"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.passwords = dict(PASSWORDS)
        self.app = web.Application()  # `running` serves it; nothing asks it anything
        self._write()

    def _write(self) -> None:
        self.path.write_text("number,password\n" + "".join(f"{n},{p}\n" for n, p in self.passwords.items()))

    def set_password(self, number: str, password: str) -> None:
        self.passwords[number] = password
        self._write()

    def mirror_config(self, url: str) -> dict[str, Any]:
        return {"source": "file", "file": str(self.path)}


SHORT = "Ab3!x9"  # six characters: a cloud may allow it, so the mirror must keep the phone working


@pytest.mark.parametrize("vendor", [*VENDORS, "file"])
async def test_short_cloud_passwords_are_mirrored_with_a_warning_never_the_password(
    vendor: str, store: Store, tmp_path: Path
) -> None:
    fake = FileVendor(tmp_path / "phones.csv") if vendor == "file" else VENDORS[vendor]()
    async with running(fake.app) as url:
        engine = engine_for(store, fake.mirror_config(url))
        assert (await engine.run()).short_passwords == []
        fake.set_password("2002", SHORT)
        with structlog.testing.capture_logs() as logs:
            result = await engine.run()
        assert (result.changed, result.short_passwords) == (1, ["2002"])
        assert ha1s(store)["2002"] == ha1_md5("2002", REALM, SHORT)
        [warning] = [e for e in logs if e["log_level"] == "warning"]
        assert warning["event"] == "short passwords mirrored"
        assert (warning["extensions"], warning["count"], warning["shorter_than"]) == (["2002"], 1, 8)
        # Status (daemon and CLI) keeps saying so on later syncs, incremental ones and 304s included.
        with structlog.testing.capture_logs() as later:
            assert (await engine.run()).short_passwords == ["2002"]
        assert not [e for e in later if e["log_level"] == "warning"]  # warned once, when it arrived
        service = MirrorService(store, engine.source, config_mod.parse({}).mirror, REALM, cloud_reachable=lambda: True)
        status = await service.status()
        assert status["short_passwords"] == ["2002"]
        assert any("1 extension(s) have a password shorter than 8 characters" in line for line in status_lines(status))
        stored = json.dumps([store.get_state(engine.key), store.recent_events(50)])
        assert SHORT not in stored and SHORT not in json.dumps(logs, default=str)
        fake.set_password("2002", "long-again-2002")
        assert (await engine.run()).short_passwords == []


@pytest.mark.parametrize("vendor", list(VENDORS))
async def test_an_empty_password_is_still_refused_and_the_last_good_mirror_stays(vendor: str, store: Store) -> None:
    fake = VENDORS[vendor]()
    async with running(fake.app) as url:
        engine = engine_for(store, fake.mirror_config(url))
        await engine.run()
        before = ha1s(store)
        fake.set_password("2002", "")
        with pytest.raises(PayloadError, match=r"(?i)password"):
            await engine.run()
        assert ha1s(store) == before
        assert "password" in engine.health()["last_error"].lower()


def groups_of(store: Store) -> dict[str, tuple[str, list[str]]]:
    return {g["number"]: (g["name"], g["members"]) for g in store.ring_groups()}


async def test_freepbx_ring_groups_keep_only_mirrored_extensions(store: Store) -> None:
    fake = FakeFreePbx()
    async with running(fake.app) as url:
        engine = engine_for(store, fake.mirror_config(url))
        assert (await engine.run()).groups == 2
        # 600 is "2001-2002-2099-015112345678#": 2099 is no extension here, the '#' number an external one.
        # 601 is "2003#-2002": 2003's Follow-Me ('#'), so 2003 itself rings.
        assert groups_of(store) == {"600": ("Sales", ["2001", "2002"]), "601": ("Back office", ["2003", "2002"])}
        assert set(map(frozenset, fake.tokens.values())) == {frozenset({"gql:core", "gql:ringgroups:read"})}
        fake.groups[1]["id"] = "cmluZ2dyb3VwOjA2MDE="  # ringgroup:0601, which the Int groupNumber 601 cannot say
        await engine.run()
        assert set(groups_of(store)) == {"600", "0601"}


async def test_freepbx_without_the_ring_group_scope_mirrors_extensions_and_leaves_groups(store: Store) -> None:
    fake = FakeFreePbx()
    async with running(fake.app) as url:
        engine = engine_for(store, fake.mirror_config(url))
        await engine.run()
        fake.allowed_scopes = {"gql:core"}  # an API application granted only what Lifeline asked for before
        fake.set_password("2002", "changed-secret-2002")
        del fake.requests[:]
        result = await engine.run()
        assert (result.changed, result.groups, len(groups_of(store))) == (1, 2, 2)
        assert [path for _, path, _ in fake.requests] == ["/admin/api/api/token"] * 2 + ["/admin/api/api/gql"]


async def test_kazoo_ring_group_callflows_resolve_users_devices_and_groups(store: Store) -> None:
    fake = FakeKazoo()
    # A ring group on an extension's own number is left to the extension (it would otherwise clash).
    fake.callflows["c0000000000000000000000000002002"] = {
        "id": "c0000000000000000000000000002002", "name": "Ben's phones", "numbers": ["2002"],
        "flow": {"module": "ring_group", "children": {}, "data": {"endpoints": [
            {"endpoint_type": "user", "id": "u0000000000000000000000000002002"}]}},
    }  # fmt: skip
    async with running(fake.app) as url:
        assert (await engine_for(store, fake.mirror_config(url)).run()).groups == 3
    # 600 (SmartPBX: a `callflow` branch to the base group's ring_group of two users) and its DID; 601 behind
    # record_call rings a device and the devices of group a1; the disabled fax, an unknown device and the
    # unknown group b2 (404) ring nobody. The main number's ring group is behind a time rule: not a group.
    assert groups_of(store) == {
        "600": ("Sales Ring Group", ["2001", "2002"]),
        "+4930123600": ("Sales Ring Group", ["2001", "2002"]),
        "601": ("Warehouse", ["2003", "2001"]),
    }
    fetched = sorted(path.rsplit("/", 1)[1] for _, path, _ in fake.requests if "/groups/" in path)
    assert fetched == ["g00000000000000000000000000000a1", "g00000000000000000000000000000b2"]


@pytest.mark.parametrize(
    ("vendor", "damage", "error"),
    [
        (
            "freepbx",
            lambda fake: fake.groups[0].update(groupList=["2001", "2002"]),
            r"POST http://127\.0\.0\.1:\d+/admin/api/api/gql: data\.fetchAllRingGroups\.ringgroups\[0\]\.groupList: "
            r"Input should be a valid string \(got list\)",
        ),
        (
            "kazoo",
            lambda fake: fake.callflows["c0000000000000000000000000000601"]["flow"]["children"]["_"]["data"].update(
                endpoints={"d1": {}}
            ),
            r"GET http://127\.0\.0\.1:\d+/v2/accounts/\w+/callflows/c0000000000000000000000000000601: "
            r"data\.flow\.children\._\.data\.endpoints: Input should be a valid list \(got dict\)",
        ),
    ],
)
async def test_a_malformed_ring_group_is_a_clear_error_and_the_last_good_mirror_stays(
    vendor: str, damage: Any, error: str, store: Store
) -> None:
    fake = VENDORS[vendor]()
    async with running(fake.app) as url:
        engine = engine_for(store, fake.mirror_config(url))
        await engine.run()
        before = (ha1s(store), groups_of(store))
        damage(fake)
        fake.set_password("2002", "changed-secret-2002")
        with pytest.raises(PayloadError, match=error):
            await engine.run()
        assert (ha1s(store), groups_of(store)) == before
        assert re.search(error, engine.health()["last_error"])
