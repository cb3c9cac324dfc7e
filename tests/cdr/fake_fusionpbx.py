"""A stand-in for FusionPBX's app/xml_cdr/xml_cdr_import.php on 127.0.0.1, as FreeSWITCH's mod_xml_cdr talks to it.

It takes what the real importer takes (an x-www-form-urlencoded POST with `cdr` = the XML CDR and
`uuid` = "a_" + the leg's uuid, HTTP Basic), reads the variables FusionPBX's xml_cdr class reads
(URL-decoded), refuses a CDR it could not file with 400, and skips a uuid it already holds.
"""

from __future__ import annotations

import asyncio
import base64
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from gateway.cdr.fusionpbx import IMPORT_PATH

# What FusionPBX's xml_cdr::xml_array() reads from <variables> (and files in v_xml_cdr).
VARIABLES = (
    "uuid",
    "domain_name",
    "caller_id_name",
    "caller_id_number",
    "call_direction",
    "start_epoch",
    "answer_epoch",
    "end_epoch",
    "start_stamp",
    "duration",
    "mduration",
    "billsec",
    "billmsec",
    "hangup_cause",
    "hangup_cause_q850",
)
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def parse_cdr(xml_text: str) -> dict[str, str]:
    """The fields FusionPBX files from one XML CDR; ValueError naming what is missing or malformed."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as err:
        raise ValueError(f"cdr: not XML: {err}") from err
    if root.tag != "cdr":
        raise ValueError(f"cdr: root element is <{root.tag}>, expected <cdr>")
    variables = root.find("variables")
    if variables is None:
        raise ValueError("cdr: no <variables>")
    fields: dict[str, str] = {}
    for name in VARIABLES:
        node = variables.find(name)
        if node is None or node.text is None:
            raise ValueError(f"cdr: variables/{name} missing")
        fields[name] = unquote(node.text)
    # The destination comes from the first callflow's caller profile, as FusionPBX reads it.
    destination = root.find("callflow/caller_profile/destination_number")
    if destination is None or not destination.text:
        raise ValueError("cdr: callflow/caller_profile/destination_number missing")
    fields["destination_number"] = unquote(destination.text)
    if not UUID.match(fields["uuid"]):
        raise ValueError(f"cdr: variables/uuid {fields['uuid']!r} is not a uuid")
    for name in ("start_epoch", "answer_epoch", "end_epoch", "duration", "mduration", "billsec", "billmsec"):
        if not fields[name].isdigit():
            raise ValueError(f"cdr: variables/{name} = {fields[name]!r} is not a whole number")
    return fields


@dataclass
class FakeFusionPbx:
    """The importer: holds each CDR once by uuid."""

    username: str
    password: str
    host: str = "127.0.0.1"
    port: int = 0
    script: list[int | None] = field(default_factory=list)  # per request in turn: answer this status (None: import)
    delay_s: float = 0.0
    records: dict[str, dict[str, str]] = field(default_factory=dict)
    posts: int = 0
    skipped: int = 0
    refused_logins: int = 0

    def __post_init__(self) -> None:
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """The FusionPBX base URL the sink is configured with."""
        return f"http://{self.host}:{self.port}"

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return (user, password) == (self.username, self.password)

    async def _handle(self, request: web.Request) -> web.Response:
        self.posts += 1
        if not self._authorized(request):
            self.refused_logins += 1
            return web.Response(status=401, text="access denied", headers={"WWW-Authenticate": 'Basic realm="x"'})
        if request.content_type != "application/x-www-form-urlencoded":
            return web.Response(status=400, text=f"expected a form, got {request.content_type}")
        form = await request.post()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.posts <= len(self.script) and self.script[self.posts - 1] is not None:
            return web.Response(status=self.script[self.posts - 1] or 500, text="injected fault")
        try:
            fields = parse_cdr(str(form.get("cdr", "")))
        except ValueError as err:
            return web.Response(status=400, text=str(err))
        if form.get("uuid") != f"a_{fields['uuid']}":
            return web.Response(status=400, text=f"uuid field {form.get('uuid')!r} is not a_<variables/uuid>")
        if fields["uuid"] in self.records:
            self.skipped += 1  # the importer's duplicate check: nothing is filed twice
        else:
            self.records[fields["uuid"]] = fields
        return web.Response(text="")

    async def start(self) -> None:
        """Listen on loopback."""
        app = web.Application()
        app.router.add_post(IMPORT_PATH, self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    def field_of(self, record_id: str, name: str) -> Any:
        """One filed field of one record."""
        return self.records[record_id][name]
