"""Kazoo (2600Hz) crossbar v2: devices (+ users for names), ring groups, per-device realm, API-key authentication.

Crossbar has no change feed we can page through, so every sync is a full snapshot diffed by
content hash; Kazoo's `object` webhooks (doc_created/edited/deleted on devices) can point at
Lifeline's webhook endpoint to trigger a pull at once. The device listing is a summary without the
SIP credentials, hence one request per device.

Kazoo keeps a dispatchable location on phone numbers, not on devices: a number's `e911` object is
the service address its E911 provider has on file, and Kazoo's own emergency notice reads it from the
number a device presents as its emergency caller ID. Lifeline does the same, with one more request
per distinct emergency caller ID. Sources (2600hz/kazoo, master): `caller_id.emergency` in
applications/crossbar/priv/couchdb/schemas/caller_id.json, `e911.*` in
https://github.com/2600hz/kazoo/blob/master/applications/crossbar/doc/phone_numbers.md, the lookup in
applications/stepswitch/src/stepswitch_bridge.erl (`set_emergency_address_meta`).

Ring groups are callflows; how they are found and resolved is in kazoo_groups.
"""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from gateway.mirror.adapters.kazoo_groups import Callflow, CallflowSummary, KazooGroup, Members, ring_groups, wanted
from gateway.mirror.engine import NUMBER
from gateway.mirror.errors import PayloadError
from gateway.mirror.http import HttpClient, redact
from gateway.mirror.model import Batch, DirectoryEntry, Group
from gateway.mirror.payload import validate
from gateway.mirror.records import MAX_LOCATION_ADDRESS, Extension, cid_number, is_short_password
from gateway.mirror.source import Progress

PAGE = 500
CONCURRENCY = 4
MAX_PAGES = 10_000


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Envelope(_Model):
    """Every crossbar reply: {data, status, auth_token, request_id, revision}, paginated lists add next_start_key."""

    data: object
    status: str = "success"
    next_start_key: str | int | None = None


class AuthData(_Model):
    """The data of PUT /v2/api_auth."""

    account_id: str


class AuthReply(_Model):
    """PUT /v2/api_auth."""

    auth_token: str = Field(min_length=1)
    data: AuthData


class Account(_Model):
    """GET /v2/accounts/{id}: its realm is the devices' default realm."""

    id: str
    realm: str = Field(min_length=1)


class DeviceSummary(_Model):
    """An item of the device listing."""

    id: str
    enabled: bool = True


class Sip(_Model):
    """A device's sip object."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1)
    realm: str | None = None
    method: str = "password"


class CallerIdEntry(_Model):
    """caller_id.internal / caller_id.emergency."""

    number: str | None = None
    name: str | None = None


class CallerId(_Model):
    """A device's caller_id object."""

    internal: CallerIdEntry = CallerIdEntry()
    emergency: CallerIdEntry = CallerIdEntry()


class Device(_Model):
    """GET /v2/accounts/{id}/devices/{device_id}."""

    id: str
    name: str = ""
    owner_id: str | None = None
    enabled: bool = True
    sip: Sip
    caller_id: CallerId = CallerId()


class User(_Model):
    """An item of the user listing."""

    id: str
    first_name: str = ""
    last_name: str = ""


class LegacyE911(_Model):
    """e911.legacy_data: the older split street fields, which Kazoo falls back to."""

    house_number: str | None = None
    streetname: str | None = None
    suite: str | None = None


class E911(_Model):
    """A number's e911 object: the service address of the number."""

    street_address: str | None = None
    extended_address: str | None = None  # "the suite/floor/apt.": one free-text line, not a floor and a room
    locality: str | None = None
    region: str | None = None
    postal_code: str | None = None
    legacy_data: LegacyE911 | None = None


class PhoneNumber(_Model):
    """GET /v2/accounts/{id}/phone_numbers/{number}."""

    e911: E911 | None = None


def _join(separator: str, *parts: str | None) -> str:
    return separator.join(p.strip() for p in parts if p and p.strip())


def device_number(device: Device) -> str:
    """The extension number of a device: its internal caller ID, else its SIP user name."""
    return device.caller_id.internal.number or device.sip.username


def e911_address(e911: E911) -> str:
    """The address on one line, with the parts Kazoo's emergency notice uses (street 1 and 2, city, region, code)."""
    legacy = e911.legacy_data or LegacyE911()
    street = e911.street_address or _join(" ", legacy.house_number, legacy.streetname)
    # Floor and room stay empty: Kazoo has one free-text line for both, which is kept where it was written.
    extended = e911.extended_address or legacy.suite
    return _join(", ", street, extended, e911.locality, _join(" ", e911.region, e911.postal_code))


class KazooDirectory:
    """A DirectorySource for a Kazoo account."""

    name = "kazoo"

    def __init__(self, *, url: str, account_id: str, api_key: str, realm: str, http: HttpClient) -> None:
        self.url = url
        self.account_id = account_id
        self._api_key = api_key
        self.realm = realm
        self.http = http

    def describe(self) -> dict[str, str]:
        """Kind, URL and account."""
        return {"kind": "Kazoo crossbar", "url": redact(self.url), "account": self.account_id}

    async def _get(self, path: str, token: str, params: dict[str, str] | None = None) -> Envelope:
        where = f"GET {redact(self.url)}{path}"
        resp = await self.http.request("GET", self.url + path, headers={"X-Auth-Token": token}, params=params)
        reply = validate(Envelope, resp.json(where), where)
        if reply.status != "success":
            raise PayloadError(f"{where}: status is {reply.status!r}")
        return reply

    async def _list(self, path: str, token: str) -> list[object]:
        items: list[object] = []
        start: str | None = None
        for _ in range(MAX_PAGES):
            params = {"paginate": "true", "page_size": str(PAGE)}
            if start is not None:
                params["start_key"] = start
            reply = await self._get(path, token, params)
            if not isinstance(reply.data, list):
                raise PayloadError(f"GET {redact(self.url)}{path}: data: expected a list")
            items.extend(reply.data)
            if reply.next_start_key is None:
                return items
            start = str(reply.next_start_key)
        raise PayloadError(f"GET {redact(self.url)}{path}: more than {MAX_PAGES} pages")

    async def _get_or_none(self, path: str, token: str) -> Envelope | None:
        """GET path; None when it is not found (404)."""
        where = f"GET {redact(self.url)}{path}"
        resp = await self.http.request("GET", self.url + path, headers={"X-Auth-Token": token}, ok=(200, 404))
        if resp.status == 404:
            return None
        reply = validate(Envelope, resp.json(where), where)
        if reply.status != "success":
            raise PayloadError(f"{where}: status is {reply.status!r}")
        return reply

    async def _location(self, path: str, token: str) -> str:
        """The E911 address of one of the account's numbers; "" when the number has none."""
        where = f"GET {redact(self.url)}{path}"
        reply = await self._get_or_none(path, token)
        if reply is None:
            return ""  # not the account's number (a carrier's, say): Kazoo's own notice has no address either
        number = validate(PhoneNumber, reply.data, where, "data")
        address = e911_address(number.e911) if number.e911 else ""
        if len(address) > MAX_LOCATION_ADDRESS:
            # An error, as the CSV and the API give: a location cut short could send help to the wrong door.
            raise PayloadError(
                f"{where}: data.e911: the address has {len(address)} characters, over {MAX_LOCATION_ADDRESS}"
            )
        return address

    async def _ring_groups(
        self, base: str, token: str, devices: list[Device], gate: asyncio.Semaphore
    ) -> tuple[Group, ...]:
        """The account's ring groups, members resolved to the numbers of the mirrored devices."""
        listing = f"{base}/callflows"
        summaries = [
            validate(CallflowSummary, raw, f"GET {listing}", f"data[{i}]")
            for i, raw in enumerate(await self._list(listing, token))
        ]

        async def callflow(summary: CallflowSummary) -> Callflow:
            path = f"{listing}/{quote(summary.id, safe='')}"
            async with gate:
                reply = await self._get(path, token)
            return validate(Callflow, reply.data, f"GET {redact(self.url)}{path}", "data")

        fetched = await asyncio.gather(*(callflow(s) for s in summaries if wanted(s)))

        async def group(group_id: str) -> KazooGroup | None:
            # A group that is gone rings nobody, as in Kazoo (cf_ring_group logs it and goes on).
            path = f"{base}/groups/{quote(group_id, safe='')}"
            reply = await self._get_or_none(path, token)
            return None if reply is None else validate(KazooGroup, reply.data, f"GET {redact(self.url)}{path}", "data")

        members = Members(
            {d.id: device_number(d) for d in devices}, {d.id: d.owner_id for d in devices if d.owner_id}, group
        )
        return await ring_groups(
            summaries,
            {c.id: c for c in fetched},
            members,
            lambda number: bool(NUMBER.fullmatch(number)),
            lambda callflow_id: f"GET {redact(self.url)}{listing}/{quote(callflow_id, safe='')}",
        )

    async def fetch(self, cursor: str | None, progress: Progress) -> Batch:
        """Authenticate with the API key, then the account, its users, every enabled device and the ring groups."""
        base = f"/v2/accounts/{self.account_id}"
        async with self.http:
            where = f"PUT {redact(self.url)}/v2/api_auth"
            resp = await self.http.request(
                "PUT", self.url + "/v2/api_auth", json_body={"data": {"api_key": self._api_key}}, ok=(200, 201)
            )
            token = validate(AuthReply, resp.json(where), where).auth_token
            account = validate(Account, (await self._get(base, token)).data, f"GET {base}", "data")
            users = {
                u.id: u
                for i, raw in enumerate(await self._list(f"{base}/users", token))
                for u in [validate(User, raw, f"GET {base}/users", f"data[{i}]")]
            }
            summaries = [
                validate(DeviceSummary, raw, f"GET {base}/devices", f"data[{i}]")
                for i, raw in enumerate(await self._list(f"{base}/devices", token))
            ]
            wanted = [s for s in summaries if s.enabled]
            gate = asyncio.Semaphore(CONCURRENCY)
            done = 0

            async def device(summary: DeviceSummary) -> Device:
                nonlocal done
                path = f"{base}/devices/{summary.id}"
                async with gate:
                    reply = await self._get(path, token)
                done += 1
                progress(done, len(wanted))
                return validate(Device, reply.data, f"GET {path}", "data")

            # IP-authenticated devices have no digest credentials to mirror.
            devices = [
                d
                for d in await asyncio.gather(*(device(s) for s in wanted))
                if d.enabled and d.sip.method == "password"
            ]
            # Only a device's own emergency caller ID is taken. Kazoo would fall back to its owner's, the
            # account's, then the external one; the owner's needs a request per user (the listing lacks
            # caller_id), and a guessed number could give the wrong address: none is safer.
            numbers = sorted({cid_number(d.caller_id.emergency.number) for d in devices} - {""})

            async def location(number: str) -> str:
                async with gate:
                    return await self._location(f"{base}/phone_numbers/{quote(number, safe='')}", token)

            locations = dict(zip(numbers, await asyncio.gather(*(location(n) for n in numbers)), strict=True))
            groups = await self._ring_groups(base, token, devices, gate)
        entries = []
        for dev in devices:
            number = device_number(dev)
            owner = users.get(dev.owner_id or "")
            name = " ".join(p for p in (owner.first_name, owner.last_name) if p) if owner else dev.name
            emergency = cid_number(dev.caller_id.emergency.number)
            ext = Extension.from_password(
                number=number,
                auth_user=dev.sip.username,
                realm=dev.sip.realm or account.realm,
                password=dev.sip.password,
                display_name=name,
                emergency_cid=emergency,
                source=self.name,
                location_address=locations.get(emergency, ""),
            )
            entries.append(DirectoryEntry(dev.id, ext, short_password=is_short_password(dev.sip.password)))
        return Batch(full=True, entries=tuple(entries), groups=groups)
