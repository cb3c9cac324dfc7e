"""Wazo: wazo-confd 1.1 (`/users`, `/lines`, `/endpoints/sip/{uuid}?view=merged`, `/groups`), X-Auth-Token.

Confd has no change feed: every sync is a full snapshot, diffed by content hash. A line's number is
its first extension's `exten`; its SIP credentials are in the endpoint's merged auth section
(templates included), which the line listing leaves out, hence one request per line.

Confd has no emergency caller ID and no location (address, floor, room) on users, lines or endpoints
(https://github.com/wazo-platform/wazo-confd/blob/master/wazo_confd/plugins/user/schema.py and
line/schema.py): both stay empty. A user's `outgoing_caller_id` is the caller ID of all its outgoing
calls, not an emergency one, so it is not taken for one.
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, ConfigDict, Field

from gateway.mirror.errors import PayloadError
from gateway.mirror.http import HttpClient, redact
from gateway.mirror.model import Batch, DirectoryEntry, Group
from gateway.mirror.payload import validate
from gateway.mirror.records import Extension, is_short_password
from gateway.mirror.source import Progress

PAGE = 500
CONCURRENCY = 4


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Exten(_Model):
    """An extension reference: {exten, context}."""

    exten: str = Field(min_length=1, max_length=32)
    context: str = ""


class UserRef(_Model):
    """A user reference inside a line or group."""

    uuid: str
    firstname: str | None = ""
    lastname: str | None = ""


class EndpointRef(_Model):
    """The endpoint_sip reference inside a line."""

    uuid: str


class Line(_Model):
    """An item of GET /lines."""

    id: int
    endpoint_sip: EndpointRef | None = None
    extensions: list[Exten] = Field(default_factory=list)
    users: list[UserRef] = Field(default_factory=list)


class User(UserRef):
    """An item of GET /users (the same fields as a line's user reference)."""


class Listing(_Model):
    """A confd list: {total, items}."""

    total: int
    items: list[dict[str, object]]


class Endpoint(_Model):
    """GET /endpoints/sip/{uuid}?view=merged."""

    uuid: str
    auth_section_options: list[tuple[str, str]]


class GroupMembers(_Model):
    """Members of a group."""

    users: list[UserRef] = Field(default_factory=list)
    extensions: list[Exten] = Field(default_factory=list)


class WazoGroup(_Model):
    """An item of GET /groups."""

    uuid: str | None = None
    id: int | None = None
    label: str | None = ""
    name: str | None = ""
    extensions: list[Exten] = Field(default_factory=list)
    members: GroupMembers = GroupMembers()


def _name(first: str | None, last: str | None) -> str:
    return " ".join(part for part in (first, last) if part)


class WazoDirectory:
    """A DirectorySource for Wazo Platform's confd."""

    name = "wazo"

    def __init__(self, *, url: str, token: str, realm: str, http: HttpClient, tenant: str | None = None) -> None:
        self.url = url
        self._headers = {"X-Auth-Token": token, "Accept": "application/json"}
        if tenant:
            self._headers["Wazo-Tenant"] = tenant
        self.realm = realm
        self.http = http

    def describe(self) -> dict[str, str]:
        """Kind and URL."""
        return {"kind": "Wazo confd", "url": redact(self.url)}

    async def _list(self, path: str, model: type[_Model]) -> list[_Model]:
        items: list[_Model] = []
        offset = 0
        while True:
            where = f"GET {redact(self.url)}{path}"
            resp = await self.http.request(
                "GET", self.url + path, headers=self._headers, params={"limit": str(PAGE), "offset": str(offset)}
            )
            page = validate(Listing, resp.json(where), where)
            for index, raw in enumerate(page.items):
                items.append(validate(model, raw, where, prefix=f"items[{offset + index}]"))
            offset += len(page.items)
            if not page.items or offset >= page.total:
                return items

    async def _endpoint(self, uuid: str) -> Endpoint:
        path = f"/endpoints/sip/{uuid}"
        where = f"GET {redact(self.url)}{path}"
        resp = await self.http.request("GET", self.url + path, headers=self._headers, params={"view": "merged"})
        return validate(Endpoint, resp.json(where), where)

    async def fetch(self, cursor: str | None, progress: Progress) -> Batch:
        """Users, lines, each line's merged endpoint, and groups: the whole directory."""
        async with self.http:
            users = {u.uuid: u for u in await self._list("/users", User) if isinstance(u, User)}
            lines = [line for line in await self._list("/lines", Line) if isinstance(line, Line)]
            sip_lines = [line for line in lines if line.endpoint_sip is not None and line.extensions]
            gate = asyncio.Semaphore(CONCURRENCY)
            done = 0

            async def endpoint(line: Line) -> Endpoint:
                nonlocal done
                assert line.endpoint_sip is not None
                async with gate:
                    result = await self._endpoint(line.endpoint_sip.uuid)
                done += 1
                progress(done, len(sip_lines))
                return result

            endpoints = await asyncio.gather(*(endpoint(line) for line in sip_lines))
            groups = [g for g in await self._list("/groups", WazoGroup) if isinstance(g, WazoGroup)]
        entries = []
        number_of_user: dict[str, str] = {}
        for line, ep in zip(sip_lines, endpoints, strict=True):
            auth = dict(ep.auth_section_options)
            where = f"endpoint {ep.uuid} (line {line.id})"
            if not auth.get("username") or not auth.get("password"):
                raise PayloadError(f"{where}: auth_section_options: missing username or password")
            number = line.extensions[0].exten
            owner = line.users[0] if line.users else None
            user = users.get(owner.uuid) if owner else None
            name = _name(user.firstname, user.lastname) if user else ""
            if owner:
                number_of_user.setdefault(owner.uuid, number)
            ext = Extension.from_password(
                number=number,
                auth_user=auth["username"],
                realm=auth.get("realm") or self.realm,
                password=auth["password"],
                display_name=name,
                source=self.name,
            )
            entries.append(DirectoryEntry(ep.uuid, ext, short_password=is_short_password(auth["password"])))
        result_groups = []
        for g in groups:
            if not g.extensions:
                continue  # a group nobody can dial needs no local copy
            members = [number_of_user[u.uuid] for u in g.members.users if u.uuid in number_of_user]
            members += [e.exten for e in g.members.extensions]
            result_groups.append(
                Group(g.extensions[0].exten, g.label or g.name or "", tuple(members), g.uuid or str(g.id))
            )
        return Batch(full=True, entries=tuple(entries), groups=tuple(result_groups))
