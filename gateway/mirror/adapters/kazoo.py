"""Kazoo (2600Hz) crossbar v2: devices (+ users for names), per-device realm, API-key authentication.

Crossbar has no change feed we can page through, so every sync is a full snapshot diffed by
content hash; Kazoo's `object` webhooks (doc_created/edited/deleted on devices) can point at
Lifeline's webhook endpoint to trigger a pull at once. The device listing is a summary without the
SIP credentials, hence one request per device.
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, ConfigDict, Field

from gateway.mirror.errors import PayloadError
from gateway.mirror.http import HttpClient, redact
from gateway.mirror.model import Batch, DirectoryEntry
from gateway.mirror.payload import validate
from gateway.mirror.records import Extension, is_short_password
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

    async def fetch(self, cursor: str | None, progress: Progress) -> Batch:
        """Authenticate with the API key, then the account, its users and every enabled device."""
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

            devices = await asyncio.gather(*(device(s) for s in wanted))
        entries = []
        for dev in devices:
            if not dev.enabled or dev.sip.method != "password":
                continue  # IP-authenticated devices have no digest credentials to mirror
            number = dev.caller_id.internal.number or dev.sip.username
            owner = users.get(dev.owner_id or "")
            name = " ".join(p for p in (owner.first_name, owner.last_name) if p) if owner else dev.name
            emergency = dev.caller_id.emergency.number or ""
            ext = Extension.from_password(
                number=number,
                auth_user=dev.sip.username,
                realm=dev.sip.realm or account.realm,
                password=dev.sip.password,
                display_name=name,
                emergency_cid=emergency if emergency.lstrip("+").isdigit() else "",
                source=self.name,
            )
            entries.append(DirectoryEntry(dev.id, ext, short_password=is_short_password(dev.sip.password)))
        return Batch(full=True, entries=tuple(entries))
