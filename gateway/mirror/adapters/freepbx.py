"""FreePBX: the GraphQL API (`fetchAllExtensions`), OAuth2 client credentials (scope gql:core).

FreePBX has no change feed: every sync is a full snapshot, diffed by content hash. The SIP secret
is `user.extPassword`; the realm is Asterisk's (config `cloud.realm`, default `asterisk`).

For emergencies an extension carries only `coreDevice.emergencyCid` (the caller ID an outbound route
flagged Emergency sets): core keeps no address, floor or room for it, so the location stays empty
(https://github.com/FreePBX/core/blob/release/17.0/Api/Gql/Devices.php, `emergencyCid`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gateway.mirror.errors import PayloadError
from gateway.mirror.http import HttpClient, redact
from gateway.mirror.model import Batch, DirectoryEntry
from gateway.mirror.payload import validate
from gateway.mirror.records import Extension, cid_number, is_short_password
from gateway.mirror.source import Progress

TOKEN_PATH = "/admin/api/api/token"
GQL_PATH = "/admin/api/api/gql"
QUERY = """query {
  fetchAllExtensions {
    status message totalCount
    extension { extensionId user { name extPassword outboundCid } coreDevice { deviceId emergencyCid } }
  }
}"""


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


class GqlData(_Model):
    """data of the GraphQL reply."""

    fetchAllExtensions: GqlExtensions  # noqa: N815


class GqlReply(_Model):
    """The GraphQL reply envelope."""

    data: GqlData | None = None
    errors: list[dict[str, object]] | None = None


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

    async def fetch(self, cursor: str | None, progress: Progress) -> Batch:
        """A fresh token, then the whole directory in one query."""
        async with self.http:
            where = f"POST {redact(self.url)}{TOKEN_PATH}"
            resp = await self.http.request(
                "POST",
                self.url + TOKEN_PATH,
                form={
                    "grant_type": "client_credentials",
                    "client_id": self.client_id,
                    "client_secret": self._secret,
                    "scope": "gql:core",
                },
            )
            token = validate(TokenReply, resp.json(where), where)
            where = f"POST {redact(self.url)}{GQL_PATH}"
            resp = await self.http.request(
                "POST",
                self.url + GQL_PATH,
                headers={"Authorization": f"Bearer {token.access_token}"},
                json_body={"query": QUERY},
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
        return Batch(full=True, entries=tuple(entries))
