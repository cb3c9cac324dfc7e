"""FusionPBX / FreeSWITCH sink: one FreeSWITCH XML CDR per POST to xml_cdr_import.php (HTTP Basic).

The importer reads the form fields `cdr` (the XML, as mod_xml_cdr sends it with encode=true) and
`uuid` ("a_" + the leg's uuid) and skips a uuid it already has, so a retry never duplicates.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import aiohttp

from gateway.cdr.records import CdrRecord, Direction
from gateway.cdr.sinks import Ack, AckStatus, SinkAuthError, SinkBatchRejectedError, SinkError

IMPORT_PATH = "/app/xml_cdr/xml_cdr_import.php"

# SIP final status → FreeSWITCH hangup cause (Q.850 names, as FreeSWITCH maps them, RFC 3398).
HANGUP_CAUSES = {
    200: "NORMAL_CLEARING",
    403: "CALL_REJECTED",
    404: "UNALLOCATED_NUMBER",
    408: "RECOVERY_ON_TIMER_EXPIRE",
    480: "NO_USER_RESPONSE",
    486: "USER_BUSY",
    487: "ORIGINATOR_CANCEL",
    600: "USER_BUSY",
    603: "CALL_REJECTED",
}


# Q.850 cause values of those names (ITU-T Q.850 Table 1), FreeSWITCH's `hangup_cause_q850`.
Q850_CODES = {
    "UNALLOCATED_NUMBER": 1,
    "NORMAL_CLEARING": 16,
    "USER_BUSY": 17,
    "NO_USER_RESPONSE": 18,
    "CALL_REJECTED": 21,
    "NORMAL_TEMPORARY_FAILURE": 41,
    "RECOVERY_ON_TIMER_EXPIRE": 102,
    "NORMAL_UNSPECIFIED": 31,
    "ORIGINATOR_CANCEL": 487,  # FreeSWITCH's own code for a cancelled call
}

CALL_DIRECTIONS = {
    Direction.INTERNAL: "local",
    Direction.OUTBOUND: "outbound",
    Direction.EMERGENCY: "outbound",
    Direction.INBOUND: "inbound",
}


def hangup_cause(sip_code: int | None) -> str:
    """FreeSWITCH's hangup cause for a SIP final status."""
    if sip_code is None:
        return "NORMAL_CLEARING"
    if sip_code in HANGUP_CAUSES:
        return HANGUP_CAUSES[sip_code]
    return "NORMAL_TEMPORARY_FAILURE" if sip_code >= 500 else "NORMAL_UNSPECIFIED"


def _stamp(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) if ts else ""


def freeswitch_xml(record: CdrRecord, domain: str) -> str:
    """The record as a FreeSWITCH XML CDR (variables URL-encoded, as mod_xml_cdr writes them)."""
    cdr = ET.Element("cdr", {"core-uuid": record.id})
    variables = ET.SubElement(cdr, "variables")
    direction = "outbound" if record.direction is Direction.INBOUND else "inbound"  # FreeSWITCH's a-leg view
    billsec = record.billable_s
    talk_ms = (
        0 if record.answer_ts is None or record.end_ts is None else round((record.end_ts - record.answer_ts) * 1000)
    )
    values: dict[str, Any] = {
        "uuid": record.id,
        "call_uuid": record.id,
        "sip_call_id": record.call_id,
        "direction": direction,
        # FusionPBX files the record under `call_direction` (inbound | outbound | local).
        "call_direction": CALL_DIRECTIONS[record.direction],
        "domain_name": domain,
        "caller_id_name": record.from_ext or record.from_number,
        "caller_id_number": record.from_number,
        "destination_number": record.to_number,
        "start_stamp": _stamp(record.start_ts),
        "answer_stamp": _stamp(record.answer_ts),
        "end_stamp": _stamp(record.end_ts),
        "start_epoch": int(record.start_ts),
        "answer_epoch": int(record.answer_ts or 0),
        "end_epoch": int(record.end_ts or record.start_ts),
        "start_uepoch": int(record.start_ts * 1e6),
        "answer_uepoch": int((record.answer_ts or 0) * 1e6),
        "end_uepoch": int((record.end_ts or record.start_ts) * 1e6),
        "duration": round(record.duration_s),
        "mduration": round(record.duration_s * 1000),
        "billsec": billsec,
        "billmsec": max(0, talk_ms),
        "hangup_cause": hangup_cause(record.sip_code),
        "hangup_cause_q850": Q850_CODES.get(hangup_cause(record.sip_code), 0),
        "sip_term_status": record.sip_code or "",
        "lifeline_disposition": record.disposition.value,
        "lifeline_mode": record.mode,
        "lifeline_clock_source": record.clock_source.value,
    }
    for key, value in values.items():
        ET.SubElement(variables, key).text = quote(str(value), safe="")
    callflow = ET.SubElement(cdr, "callflow")
    profile = ET.SubElement(callflow, "caller_profile")
    for key, value in (
        ("username", record.from_ext or ""),
        ("context", domain),  # FusionPBX falls back to the context when domain_name is missing
        ("caller_id_name", record.from_ext or record.from_number),
        ("caller_id_number", record.from_number),
        ("destination_number", record.to_number),
        ("uuid", record.id),
    ):
        ET.SubElement(profile, key).text = value
    times = ET.SubElement(callflow, "times")
    ET.SubElement(times, "created_time").text = str(values["start_uepoch"])
    ET.SubElement(times, "answered_time").text = str(values["answer_uepoch"])
    ET.SubElement(times, "hangup_time").text = str(values["end_uepoch"])
    return ET.tostring(cdr, encoding="unicode")


class FusionPbxSink:
    """Posts each record to FusionPBX's xml_cdr_import.php."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        domain: str,
        timeout_s: float = 10.0,
        name: str = "fusionpbx",
    ) -> None:
        self.name = name
        self.url = base_url.rstrip("/") + IMPORT_PATH
        self.domain = domain
        self.timeout_s = timeout_s
        self._auth = {"Authorization": aiohttp.encode_basic_auth(username, password)}
        self._session: aiohttp.ClientSession | None = None

    async def _post(self, record: CdrRecord) -> Ack:
        assert self._session is not None
        form = {"uuid": f"a_{record.id}", "cdr": freeswitch_xml(record, self.domain)}
        try:
            async with self._session.post(self.url, data=form, headers=self._auth) as resp:
                text = (await resp.read())[:200].decode(errors="replace")
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as err:
            raise SinkError(f"{self.name}: {type(err).__name__}: {err}") from err
        # The importer answers a bad login with 200 and "access denied" in the body.
        if status in (401, 403) or "access denied" in text.lower():
            raise SinkAuthError(f"{self.name}: HTTP {status}: {text.strip()}")
        if status in (400, 413, 422):
            raise SinkBatchRejectedError(f"{self.name}: HTTP {status}: {text.strip()}")
        if status // 100 != 2:
            raise SinkError(f"{self.name}: HTTP {status}: {text.strip()}")
        return Ack(record.id, AckStatus.ACCEPTED)

    async def push(self, batch: Sequence[CdrRecord], idempotency_key: str) -> list[Ack]:
        """One POST per record, in order; what was acked before a failure stays acked."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        acks: list[Ack] = []
        for record in batch:
            try:
                acks.append(await self._post(record))
            except SinkBatchRejectedError as err:
                acks.append(Ack(record.id, AckStatus.REJECTED, str(err)))
            except SinkError:
                if not acks:
                    raise
                break  # the rest is retried later
        return acks

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def describe(self) -> dict[str, Any]:
        """For the status: where it posts (no credentials)."""
        return {"kind": "fusionpbx", "url": self.url}
