"""Pure AT wire code: line framing, final result codes, the URC/reply router, and line parsers.

Nothing here does I/O. The driver feeds bytes in and gets lines, replies and URCs out; parsers
turn one line into a small dataclass or raise ValueError with an exact message. One module per
topic; everything is importable from here (`from gateway.trunk import at; at.parse_creg(...)`).
"""

from __future__ import annotations

from gateway.trunk.at.calls import (
    CallDir,
    CallEnd,
    CallEntry,
    CallerId,
    CallStat,
    V253CallerId,
    VoiceCallEvent,
    merge_v253_cid,
    parse_cend,
    parse_clcc,
    parse_clip,
    parse_huawei_call,
    parse_qind,
    parse_voice_call,
)
from gateway.trunk.at.fields import as_int, payload_of, quote, split_fields
from gateway.trunk.at.framing import (
    CALL_RESULTS,
    CME_INCORRECT_PASSWORD,
    CME_SIM_BUSY,
    CME_SIM_NOT_INSERTED,
    CME_SIM_PIN_REQUIRED,
    CME_SIM_PUK_REQUIRED,
    CME_TEXT_TO_CODE,
    STREAM_RESULTS,
    Final,
    FinalKind,
    LineSplitter,
    parse_final,
)
from gateway.trunk.at.network import (
    AccessTech,
    Operator,
    Registration,
    RegStat,
    Signal,
    is_creg_read,
    parse_cclk,
    parse_cops,
    parse_creg,
    parse_csq,
)
from gateway.trunk.at.router import COMMON_URCS, TWO_LINE_URCS, AtRouter, Reply, Urc, expected_prefix, urc_name
from gateway.trunk.at.sim import SimState, parse_cpin
from gateway.trunk.at.sms import Sms, SmsIndication, parse_cmgr, parse_cmt, parse_cmti

__all__ = [
    "CALL_RESULTS",
    "CME_INCORRECT_PASSWORD",
    "CME_SIM_BUSY",
    "CME_SIM_NOT_INSERTED",
    "CME_SIM_PIN_REQUIRED",
    "CME_SIM_PUK_REQUIRED",
    "CME_TEXT_TO_CODE",
    "COMMON_URCS",
    "STREAM_RESULTS",
    "TWO_LINE_URCS",
    "AccessTech",
    "AtRouter",
    "CallDir",
    "CallEnd",
    "CallEntry",
    "CallStat",
    "CallerId",
    "Final",
    "FinalKind",
    "LineSplitter",
    "Operator",
    "RegStat",
    "Registration",
    "Reply",
    "Signal",
    "SimState",
    "Sms",
    "SmsIndication",
    "Urc",
    "V253CallerId",
    "VoiceCallEvent",
    "as_int",
    "expected_prefix",
    "is_creg_read",
    "merge_v253_cid",
    "parse_cclk",
    "parse_cend",
    "parse_clcc",
    "parse_clip",
    "parse_cmgr",
    "parse_cmt",
    "parse_cmti",
    "parse_cops",
    "parse_cpin",
    "parse_creg",
    "parse_csq",
    "parse_final",
    "parse_huawei_call",
    "parse_qind",
    "parse_voice_call",
    "payload_of",
    "quote",
    "split_fields",
    "urc_name",
]
