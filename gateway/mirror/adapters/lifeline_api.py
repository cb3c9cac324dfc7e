"""The Lifeline directory API: our vendor-neutral format (JSON over HTTPS, bearer token, paginated, ETag, `since`).

The pydantic models below are the specification: gateway/mirror/api/ holds the JSON Schema and the
OpenAPI document generated from them (`python -m gateway.mirror.api`), and a test keeps them equal.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.mirror.errors import FetchError, PayloadError
from gateway.mirror.http import HttpClient, redact
from gateway.mirror.model import Batch, DirectoryEntry, Group, Tombstone
from gateway.mirror.payload import validate
from gateway.mirror.records import Extension, is_short_password
from gateway.mirror.source import Progress

NUMBER = r"^\+?[0-9*#]+$"
SIP_TOKEN = r"^[A-Za-z0-9._~!$&'()*+,;=%-]+$"
MAX_PAGES = 10_000

Number = Annotated[str, Field(min_length=1, max_length=32, pattern=NUMBER)]


class _Strict(BaseModel):
    # Strict: a number sent as 1001 instead of "1001" is an error, not a silent conversion.
    model_config = ConfigDict(extra="ignore", strict=True, str_strip_whitespace=True)


class DirectoryLocation(_Strict):
    """Where the extension's phone is: the dispatchable location an emergency notification shows."""

    address: str = Field("", max_length=200, description="street address, e.g. Hauptstr. 1, 10115 Berlin")
    floor: str = Field("", max_length=32)
    room: str = Field("", max_length=64)


class DirectoryExtension(_Strict):
    """One extension. Carries either the clear SIP `password` (hashed on arrival) or its `ha1` digests."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [{"required": ["password"]}, {"required": ["ha1"]}]})

    id: str = Field(min_length=1, max_length=128, description="the vendor's stable id; tombstones name it")
    number: Number = Field(description="the dialable extension number")
    display_name: str = Field("", max_length=80)
    auth_user: str | None = Field(
        None, min_length=1, max_length=64, pattern=SIP_TOKEN, description="digest user name; default: number"
    )
    realm: str | None = Field(None, min_length=1, max_length=128, description="digest realm; default: top-level realm")
    password: str | None = Field(None, min_length=1, max_length=128, description="clear SIP password (or give ha1)")
    ha1: str | None = Field(None, pattern=r"^[0-9a-f]{32}$", description="MD5(auth_user:realm:password)")
    ha1_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$", description="SHA-256(auth_user:realm:password)")
    groups: list[str] = Field(default_factory=list, description="names of the groups the extension belongs to")
    emergency_cid: str = Field("", max_length=32, pattern=r"^(\+?[0-9]+)?$")
    location: DirectoryLocation | None = Field(None, description="dispatchable location, for emergency notices")
    updated_at: str = Field("", max_length=64, description="RFC 3339 time of the last change")

    @model_validator(mode="after")
    def _one_credential(self) -> DirectoryExtension:
        if (self.password is None) == (self.ha1 is None):
            raise ValueError("give exactly one of password and ha1")
        return self


class DirectoryGroup(_Strict):
    """A ring group: calling its number rings all members at once."""

    id: str = Field("", max_length=128)
    number: Number
    name: str = Field("", max_length=80)
    members: list[Number] = Field(description="extension numbers")


class DirectoryDeleted(_Strict):
    """A tombstone: the extension with this id is gone."""

    id: str = Field(min_length=1, max_length=128)
    deleted_at: str = Field("", max_length=64)


class DirectoryPage(_Strict):
    """One page of `GET /v1/directory`."""

    version: Literal[1] = 1
    realm: str | None = Field(None, min_length=1, max_length=128, description="default realm of the extensions")
    full: bool = Field(description="true: the whole directory (absent ids are deleted); false: changes since `since`")
    total: int | None = Field(None, ge=0, description="entries in the whole listing, for progress")
    extensions: list[DirectoryExtension]
    deleted: list[DirectoryDeleted] = Field(default_factory=list, description="tombstones (changes only)")
    groups: list[DirectoryGroup] | None = Field(
        None, description="all groups, on the last page; absent: groups unchanged"
    )
    next: str | None = Field(None, description="page token for the next page; null on the last page")
    cursor: str | None = Field(None, description="on the last page: pass as `since` to get later changes")


def to_entry(item: DirectoryExtension, realm: str, source: str) -> DirectoryEntry:
    """An API extension as a stored record: hash the password now, or take the digests as given."""
    auth_user = item.auth_user or item.number
    ext_realm = item.realm or realm
    common = {
        "number": item.number,
        "auth_user": auth_user,
        "realm": ext_realm,
        "display_name": item.display_name,
        "groups": tuple(item.groups),
        "emergency_cid": item.emergency_cid,
        "source": source,
        "location_address": item.location.address if item.location else "",
        "location_floor": item.location.floor if item.location else "",
        "location_room": item.location.room if item.location else "",
    }
    if item.password is not None:
        ext = Extension.from_password(password=item.password, **common)  # type: ignore[arg-type]
        return DirectoryEntry(item.id, ext, item.updated_at, short_password=is_short_password(item.password))
    # Given as digests: the password's length is unknown here (the cloud knows it).
    ext = Extension(ha1=item.ha1 or "", ha1_sha256=item.ha1_sha256 or "", **common)  # type: ignore[arg-type]
    return DirectoryEntry(item.id, ext, item.updated_at)


class LifelineDirectory:
    """A DirectorySource for the Lifeline directory API."""

    name = "lifeline"

    def __init__(self, *, url: str, token: str, realm: str, http: HttpClient, page_size: int = 1000) -> None:
        self.url = url
        self._token = token
        self.realm = realm
        self.http = http
        self.page_size = page_size

    def describe(self) -> dict[str, str]:
        """Kind and URL (no token)."""
        return {"kind": "lifeline directory API", "url": redact(self.url)}

    async def fetch(self, cursor: str | None, progress: Progress) -> Batch:
        """Changes since the stored cursor, or the whole directory; a stale cursor (410) falls back to full."""
        saved = json.loads(cursor) if cursor else {}
        since = saved.get("since")
        try:
            return await self._fetch(since, saved.get("etag"), progress)
        except _CursorGoneError:
            return await self._fetch(None, None, progress)

    async def _fetch(self, since: str | None, etag: str | None, progress: Progress) -> Batch:
        async with self.http:
            pages: list[DirectoryPage] = []
            token: str | None = None
            first_etag: str | None = None
            count = 0
            for number in range(MAX_PAGES):
                params = {"limit": str(self.page_size)}
                if since:
                    params["since"] = since
                if token:
                    params["page"] = token
                headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
                if number == 0 and etag:
                    headers["If-None-Match"] = etag
                resp = await self.http.request(
                    "GET", f"{self.url}/v1/directory", headers=headers, params=params, ok=(200, 304, 410)
                )
                where = f"GET {redact(self.url)}/v1/directory page {number + 1}"
                if resp.status == 410:
                    raise _CursorGoneError
                if resp.status == 304:
                    if number:
                        raise FetchError(f"{where}: 304 Not Modified in the middle of a listing")
                    return Batch(full=False, not_modified=True, cursor=json.dumps({"since": since, "etag": etag}))
                if number == 0:
                    first_etag = resp.headers.get("ETag")
                page = validate(DirectoryPage, resp.json(where), where)
                if since is None and not page.full:
                    raise PayloadError(f"{where}: asked for the whole directory, got changes (`full` is false)")
                if pages and page.full != pages[0].full:
                    raise PayloadError(f"{where}: `full` changed between pages")
                pages.append(page)
                count += len(page.extensions)
                progress(count, page.total)
                token = page.next
                if not token:
                    break
            else:
                raise PayloadError(f"GET {redact(self.url)}/v1/directory: more than {MAX_PAGES} pages")
        last = pages[-1]
        if last.cursor is None:
            raise PayloadError(f"GET {redact(self.url)}/v1/directory: the last page has no cursor")
        realm = last.realm or pages[0].realm or self.realm
        entries = tuple(to_entry(item, realm, self.name) for page in pages for item in page.extensions)
        groups = None
        if last.groups is not None:
            groups = tuple(Group(g.number, g.name, tuple(g.members), g.id) for g in last.groups)
        return Batch(
            full=pages[0].full,
            entries=entries,
            tombstones=tuple(Tombstone(d.id) for page in pages for d in page.deleted),
            groups=groups,
            cursor=json.dumps({"since": last.cursor, "etag": first_etag}),
        )


class _CursorGoneError(Exception):
    """The server no longer knows our cursor (410 Gone): start over with a full listing."""
