"""FreePBX: the GraphQL API (`fetchAllExtensions`, `fetchAllRingGroups`), OAuth2 client credentials.

FreePBX has no change feed: every sync is a full snapshot, diffed by content hash. The SIP secret
is `user.extPassword`; the realm is Asterisk's (config `cloud.realm`, default `asterisk`).

For emergencies an extension carries only `coreDevice.emergencyCid` (the caller ID an outbound route
flagged Emergency sets): core keeps no address, floor or room for it, so the location stays empty
(https://github.com/FreePBX/core/blob/release/17.0/Api/Gql/Devices.php, `emergencyCid`).

Ring groups come from the ringgroups module's own query, which needs a scope of that module
(https://github.com/FreePBX/ringgroups/blob/release/17.0/Api/Gql/Ringgroups.php: `fetchAllRingGroups`,
`groupNumber`, `description`, `groupList` = the `grplist` column, members joined by "-" as
Ringgroups.class.php stores them; scopes are checked in FreePBX/api Includes/ApiBase.php `checkScope`
and Oauth/Repositories/ScopeRepository.php).
"""

from __future__ import annotations

import base64
import re

import structlog
from pydantic import BaseModel, ConfigDict, Field

from gateway.mirror.errors import FetchError, PayloadError
from gateway.mirror.http import HttpClient, Response, redact
from gateway.mirror.model import Batch, DirectoryEntry, Group
from gateway.mirror.payload import validate
from gateway.mirror.records import Extension, cid_number, is_short_password
from gateway.mirror.source import Progress

log = structlog.get_logger("mirror")

TOKEN_PATH = "/admin/api/api/token"
GQL_PATH = "/admin/api/api/gql"
CORE_SCOPE = "gql:core"
GROUPS_SCOPE = "gql:ringgroups:read"  # least privilege; granted by gql:ringgroups or gql as well
EXTENSIONS = """fetchAllExtensions {
    status message totalCount
    extension { extensionId user { name extPassword outboundCid } coreDevice { deviceId emergencyCid } }
  }"""
RING_GROUPS = "fetchAllRingGroups { status message totalCount ringgroups { id groupNumber description groupList } }"
MEMBER_SEPARATOR = re.compile(r"[-\s]+")  # "-" as stored; the GraphQL field's description says one per line
GRPNUM = re.compile(r"[0-9]{1,20}")  # grpnum is a VARCHAR(20) of digits (ringgroups module.xml)


def query(groups: bool) -> str:
    """The GraphQL query: the extensions, and the ring groups when the token may read them."""
    return "query {\n  " + EXTENSIONS + (f"\n  {RING_GROUPS}" if groups else "") + "\n}"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TokenReply(_Model):
    """OAuth2 token response (RFC 6749 section 5.1)."""

    access_token: str = Field(min_length=1)
    token_type: str = "Bearer"


class GqlUser(_Model):
    """The user half of an extension."""

    name: str = ""
    extPassword: str = Field(min_length=1)  # noqa: N815 - FreePBX's field name
    outboundCid: str | None = None  # noqa: N815


class GqlDevice(_Model):
    """The device half of an extension."""

    deviceId: str | None = None  # noqa: N815
    emergencyCid: str | None = None  # noqa: N815


class GqlExtension(_Model):
    """One item of fetchAllExtensions.extension."""

    extensionId: str = Field(min_length=1, max_length=32, pattern=r"^\+?[0-9*#]+$")  # noqa: N815
    user: GqlUser
    coreDevice: GqlDevice | None = None  # noqa: N815


class GqlExtensions(_Model):
    """fetchAllExtensions."""

    status: bool
    message: str = ""
    totalCount: int | None = None  # noqa: N815
    extension: list[GqlExtension] | None = None


class GqlRingGroup(_Model):
    """One item of fetchAllRingGroups.ringgroups."""

    id: str | None = None  # Relay global id: base64 of "ringgroup:<grpnum>"
    groupNumber: int = Field(ge=0, lt=10**20)  # noqa: N815 - a GraphQL Int
    description: str | None = None
    groupList: str | None = None  # noqa: N815


class GqlRingGroups(_Model):
    """fetchAllRingGroups (a Relay connection; its message is null on success)."""

    status: bool
    message: str | None = None
    totalCount: int | None = None  # noqa: N815
    ringgroups: list[GqlRingGroup] | None = None


class GqlData(_Model):
    """data of the GraphQL reply."""

    fetchAllExtensions: GqlExtensions  # noqa: N815
    fetchAllRingGroups: GqlRingGroups | None = None  # noqa: N815


class GqlReply(_Model):
    """The GraphQL reply envelope."""

    data: GqlData | None = None
    errors: list[dict[str, object]] | None = None


def group_number(group: GqlRingGroup) -> str:
    """The group's number as FreePBX keeps it: the Int `groupNumber` loses a leading zero, the Relay id does not."""
    try:
        kind, _, grpnum = base64.b64decode(group.id or "", validate=True).decode().partition(":")
    except ValueError:  # not base64, or not UTF-8: the number alone then
        kind, grpnum = "", ""
    if kind == "ringgroup" and GRPNUM.fullmatch(grpnum) and int(grpnum) == group.groupNumber:
        return grpnum
    return str(group.groupNumber)


def ring_groups(result: GqlRingGroups, numbers: set[str], where: str) -> tuple[Group, ...]:
    """The ring groups, each with the members that are mirrored extensions."""
    if not result.status:
        raise PayloadError(f"{where}: fetchAllRingGroups failed: {result.message or 'no message'}")
    items = result.ringgroups or []
    if result.totalCount is not None and result.totalCount != len(items):
        raise PayloadError(f"{where}: fetchAllRingGroups totalCount is {result.totalCount} but {len(items)} came")
    groups = []
    for item in items:
        members: list[str] = []
        for member in MEMBER_SEPARATOR.split(item.groupList or ""):
            # A trailing '#' sends the call through the dialplan: an external number over a trunk, or an
            # extension's Follow-Me (the module's help text). Lifeline rings only registrations it holds, so
            # the extension itself stands in for its Follow-Me, and external numbers and extensions it does
            # not mirror are left out: Kamailio would look each member up as a local registration.
            number = member.removesuffix("#")
            if number in numbers and number not in members:
                members.append(number)
        vendor_id = item.id or str(item.groupNumber)
        groups.append(Group(group_number(item), item.description or "", tuple(members), vendor_id))
    return tuple(groups)


def _oauth_error(resp: Response, where: str) -> str:
    """The `error` code of an OAuth2 error reply (RFC 6749 section 5.2); "" when there is none."""
    try:
        body = resp.json(where)
    except PayloadError:
        return ""
    return str(body.get("error", ""))[:64] if isinstance(body, dict) else ""


class FreePbxDirectory:
    """A DirectorySource for FreePBX 16/17's GraphQL API."""

    name = "freepbx"

    def __init__(self, *, url: str, client_id: str, client_secret: str, realm: str, http: HttpClient) -> None:
        self.url = url
        self.client_id = client_id
        self._secret = client_secret
        self.realm = realm
        self.http = http

    def describe(self) -> dict[str, str]:
        """Kind and URL."""
        return {"kind": "FreePBX GraphQL", "url": redact(self.url)}

    async def _token(self, scope: str) -> str | None:
        """An access token for scope; None when FreePBX refuses the scope itself (invalid_scope)."""
        where = f"POST {redact(self.url)}{TOKEN_PATH}"
        resp = await self.http.request(
            "POST",
            self.url + TOKEN_PATH,
            form={
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self._secret,
                "scope": scope,
            },
            ok=(200, 400),
        )
        if resp.status == 400:
            error = _oauth_error(resp, where)
            if error == "invalid_scope":
                return None
            raise FetchError(f"{where}: HTTP 400: the token request was refused ({error or 'no reason given'})")
        return validate(TokenReply, resp.json(where), where).access_token

    async def fetch(self, cursor: str | None, progress: Progress) -> Batch:
        """A fresh token, then the whole directory (and the ring groups) in one query."""
        async with self.http:
            token = await self._token(f"{CORE_SCOPE} {GROUPS_SCOPE}")
            with_groups = token is not None
            if token is None:
                # FreePBX 16 refuses a scope the API application was not granted, 17 the scope of a module
                # that is not installed: the extensions are mirrored all the same, the groups left as they are.
                log.info(
                    "FreePBX refused the ring groups' scope: not mirrored", scope=GROUPS_SCOPE, url=redact(self.url)
                )
                token = await self._token(CORE_SCOPE)
                if token is None:
                    raise FetchError(
                        f"POST {redact(self.url)}{TOKEN_PATH}: HTTP 400: the scope {CORE_SCOPE} was refused"
                    )
            where = f"POST {redact(self.url)}{GQL_PATH}"
            resp = await self.http.request(
                "POST",
                self.url + GQL_PATH,
                headers={"Authorization": f"Bearer {token}"},
                json_body={"query": query(with_groups)},
            )
            reply = validate(GqlReply, resp.json(where), where)
        if reply.errors:
            messages = "; ".join(str(e.get("message", e)) for e in reply.errors[:3])
            raise PayloadError(f"{where}: GraphQL error: {messages}")
        if reply.data is None:
            raise PayloadError(f"{where}: data: missing")
        result = reply.data.fetchAllExtensions
        if not result.status:
            raise PayloadError(f"{where}: fetchAllExtensions failed: {result.message or 'no message'}")
        items = result.extension or []
        if result.totalCount is not None and result.totalCount != len(items):
            raise PayloadError(f"{where}: totalCount is {result.totalCount} but {len(items)} extensions came")
        progress(len(items), len(items))
        entries = []
        for item in items:
            device = item.coreDevice or GqlDevice()
            ext = Extension.from_password(
                number=item.extensionId,
                auth_user=device.deviceId or item.extensionId,
                realm=self.realm,
                password=item.user.extPassword,
                display_name=item.user.name,
                emergency_cid=cid_number(device.emergencyCid),
                source=self.name,
            )
            short = is_short_password(item.user.extPassword)
            entries.append(DirectoryEntry(item.extensionId, ext, short_password=short))
        groups = None
        if with_groups:
            if reply.data.fetchAllRingGroups is None:
                raise PayloadError(f"{where}: data.fetchAllRingGroups: missing")
            groups = ring_groups(reply.data.fetchAllRingGroups, {e.extension.number for e in entries}, where)
        return Batch(full=True, entries=tuple(entries), groups=groups)
