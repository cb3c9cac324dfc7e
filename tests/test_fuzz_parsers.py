"""Hypothesis fuzz of the pure parsers: each raises only its documented error, and none is slow on any input.

AT lines and replies (gateway/trunk/at/: ValueError), DLE streams (gateway/trunk/dle.py: ValueError),
directory payloads and the vendor adapters fed mutated answers (gateway/mirror: MirrorError, PayloadError
is also a ValueError), extension files (ImportRowsError), the config (ConfigError), the caller stamp
(never raises: None for anything not signed by Kamailio) and the trunk header (ValueError).

Runs are derandomized (the same inputs every run, so CI is stable); LIFELINE_FUZZ_EXAMPLES=2000 runs
more of them, LIFELINE_FUZZ_RANDOM=1 random ones (hypothesis prints the failing input and its seed).
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import tempfile
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from gateway.cdr import trunkinfo
from gateway.config import load, parse
from gateway.errors import ConfigError, ImportRowsError
from gateway.mirror.adapters import freepbx, kazoo, kazoo_groups, lifeline_api, wazo
from gateway.mirror.errors import MirrorError, PayloadError
from gateway.mirror.files import parse_extensions
from gateway.mirror.http import Response
from gateway.mirror.payload import validate
from gateway.mirror.records import cid_number
from gateway.sip import stamp
from gateway.trunk import at, dle

pytestmark = pytest.mark.timeout(120)

DATA = Path(__file__).parent / "data"
SCALE = int(os.environ.get("LIFELINE_FUZZ_EXAMPLES", "0"))
RANDOM = os.environ.get("LIFELINE_FUZZ_RANDOM") == "1"
SLOW_S = 2.0  # no single parse may take this long: catastrophic regexes and quadratic loops show here

T = TypeVar("T")


def fuzz(examples: int) -> Any:
    """Settings for one fuzz test: few examples by default, no deadline (a loaded CI box), derandomized."""
    return settings(
        max_examples=SCALE or examples,
        deadline=None,
        derandomize=not RANDOM,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
        print_blob=True,
    )


def quick(call: Callable[[], T]) -> T:
    """Run call; fail if it took SLOW_S or more (a hang shows as the module's timeout)."""
    start = time.monotonic()
    try:
        return call()
    finally:
        assert time.monotonic() - start < SLOW_S, "a parser took too long on this input"


def raises_only(errors: tuple[type[BaseException], ...], call: Callable[[], T]) -> T | None:
    """call()'s result, or None when it raised one of errors; anything else fails the test."""
    try:
        return quick(call)
    except errors:
        return None


# --------------------------------------------------------------------------- generic inputs

JSON_KEYS = st.sampled_from(
    ["id", "uuid", "number", "password", "ha1", "realm", "name", "data", "items", "total", "users", "lines",
     "extensions", "exten", "sip", "username", "enabled", "status", "next", "cursor", "full", "groups", "members",
     "auth_section_options", "caller_id", "internal", "fetchAllExtensions", "extension", "user", "extPassword",
     "fetchAllRingGroups", "ringgroups", "groupNumber", "groupList", "flow", "module", "children", "endpoints",
     "endpoint_type", "type", "_"]
) | st.text(max_size=8)  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=24)
    | st.sampled_from(["", "1001", "+4930123456", "success", "password", "0" * 40, "a" * 300])
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(JSON_KEYS, inner, max_size=5),
    max_leaves=20,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found += _paths(item, (*prefix, key))
    return found


def mutate(data: st.DataObject, value: Any, at_least: int = 0) -> Any:
    """value with up to three spots damaged: a node replaced by any JSON, dropped, or wrapped in a list."""
    value = copy.deepcopy(value)
    for _ in range(data.draw(st.integers(at_least, 3), label="damages")):
        path = data.draw(st.sampled_from(_paths(value)), label="where")
        op = data.draw(st.sampled_from(["replace", "drop", "wrap"]), label="how")
        if not path:
            value = data.draw(JSON) if op != "wrap" else [value]
            continue
        parent = value
        for key in path[:-1]:
            parent = parent[key]
        if op == "drop":
            del parent[path[-1]]
        elif op == "wrap":
            parent[path[-1]] = [parent[path[-1]]]
        else:
            parent[path[-1]] = data.draw(JSON)
    return value


def damaged(text: str) -> st.SearchStrategy[str]:
    """text with a few characters inserted, deleted or replaced."""

    @st.composite
    def build(draw: st.DrawFn) -> str:
        chars = list(text)
        for _ in range(draw(st.integers(0, 4))):
            at_ = draw(st.integers(0, len(chars)))
            op = draw(st.sampled_from(["insert", "delete", "replace"]))
            new = draw(st.characters(codec="utf-8", exclude_categories=["Cs"]))
            if op == "insert":
                chars.insert(at_, new)
            elif chars and at_ < len(chars):
                chars[at_ : at_ + 1] = [] if op == "delete" else [new]
        return "".join(chars)

    return build()


# --------------------------------------------------------------------------- AT lines


def transcript_lines() -> list[str]:
    """Every line the modem transcripts show the router producing (URCs, information lines, finals)."""
    lines: list[str] = []
    for path in sorted((DATA / "modem").glob("*.txt")):
        for raw in path.read_text().splitlines():
            if raw.startswith("= urc "):
                lines += raw.removeprefix("= urc ").split(" || ")
            elif raw.startswith("= reply "):
                lines += [part.strip() for part in raw.removeprefix("= reply ").split(" | ")[1:]]
    return sorted(set(lines))


REAL_AT = transcript_lines()
AT_PREFIXES = ["+CSQ: ", "+CREG: ", "+CEREG: ", "+CGREG: ", "+COPS: ", "+CPIN: ", "+CLIP: ", "+CLCC: ", "+QIND: ",
               "^CEND:", "^ORIG:", "^CONF:", "^CONN:", "VOICE CALL: ", "+CCLK: ", "+CMTI: ", "+CMT: ", "+CMGR: ",
               "+CME ERROR: ", "+CMS ERROR: ", "NMBR = ", "NAME=", "DATE=", "TIME=", ""]  # fmt: skip
AT_FIELDS = st.text(alphabet='0123456789,"+-:/ ^=.;ABCDEFGHIJKLMNOPQRSTUVWXYZabcdez\t', max_size=60)
AT_LINES = (
    st.sampled_from(REAL_AT).flatmap(damaged)
    | st.builds(lambda p, f: p + f, st.sampled_from(AT_PREFIXES), AT_FIELDS)
    | st.text(max_size=80)
)
LINE_PARSERS: list[Callable[[str], object]] = [
    at.parse_csq, lambda s: at.parse_creg(s, True), lambda s: at.parse_creg(s, False), at.parse_cops,
    at.parse_cpin, at.parse_clip, at.parse_clcc, at.parse_qind, at.parse_cend, at.parse_huawei_call,
    at.parse_voice_call, at.parse_cclk, at.parse_cmti, lambda s: at.parse_cmt(s, "text"),
    lambda s: at.parse_cmgr((s, "text")), lambda s: at.merge_v253_cid(at.V253CallerId(), s), at.quote,
    lambda s: at.Reply("AT+X", (s,), at.Final(at.FinalKind.OK)).line("+X"),
]  # fmt: skip


def test_the_transcripts_give_the_fuzzer_real_lines() -> None:
    assert len(REAL_AT) > 40 and any(line.startswith("+CLIP:") for line in REAL_AT)


@fuzz(400)
@given(line=AT_LINES)
def test_at_line_parsers_raise_only_value_error(line: str) -> None:
    for parser in LINE_PARSERS:
        raises_only((ValueError,), lambda parser=parser: parser(line))
    quick(lambda: (at.parse_final(line), at.urc_name(line), at.expected_prefix(line), at.is_creg_read(line)))
    fields = raises_only((ValueError,), lambda: at.split_fields(line))
    if fields is not None:
        assert all('"' not in f for f in fields) or line.count('"') % 2 == 0
    quoted = raises_only((ValueError,), lambda: at.quote(line))
    if quoted is not None:
        assert quoted == f'"{line}"' and not any(c in line for c in '"\r\n\x1a\x1b')


@fuzz(150)
@given(
    command=st.sampled_from(["AT+CSQ", "ATD+4930123456;", "ATA", 'AT+CMGS="+491"', "AT+CLCC", "ATI", "AT+VTX"])
    | st.text(max_size=20),
    lines=st.lists(AT_LINES, max_size=12),
    again=st.booleans(),
)
def test_the_router_takes_any_line_and_begins_only_one_command(command: str, lines: list[str], again: bool) -> None:
    router = at.AtRouter()
    router.begin(command)
    for line in lines:
        routed = quick(lambda line=line: router.feed(line))
        assert routed is None or isinstance(routed, at.Urc | at.Reply)
        if isinstance(routed, at.Reply):
            assert routed.command == command and not router.busy
            if again:
                router.begin(command)
        elif router.busy:
            with pytest.raises(ValueError, match="still outstanding"):
                router.begin("AT")


@fuzz(300)
@given(
    chunks=st.lists(
        st.binary(max_size=64) | st.sampled_from([b"\r\n", b"\r", b"\n", b"> ", b"OK\r\n", b"+CSQ: 1,2\r\n"]),
        max_size=20,
    ),
    limit=st.sampled_from([8, 64, 4096]),
)
def test_line_splitter_only_ever_refuses_an_overlong_line(chunks: list[bytes], limit: int) -> None:
    splitter = at.LineSplitter(limit)
    for chunk in chunks:
        try:
            lines = quick(lambda chunk=chunk: splitter.feed(chunk))
        except ValueError as err:
            assert "without CR/LF" in str(err) and splitter.pending == b""
            continue
        for line in lines:
            assert line and line == line.strip() and "\r" not in line and "\n" not in line
        assert len(splitter.pending) <= limit


# --------------------------------------------------------------------------- DLE streams


def merged(items: list[dle.Item]) -> list[dle.Item]:
    """Adjacent sample runs joined (a feed may cut one run in two; the stream's meaning is the same)."""
    out: list[dle.Item] = []
    for item in items:
        if isinstance(item, bytes) and out and isinstance(out[-1], bytes):
            out[-1] = out[-1] + item
        else:
            out.append(item)
    return out


DLE_STREAMS = st.lists(
    st.binary(max_size=16) | st.sampled_from([b"\x10", b"\x10\x10", b"\x10\x03", b"\x10R", b"\x105", b"\x10~"]),
    max_size=24,
).map(b"".join)


@fuzz(400)
@given(stream=DLE_STREAMS, cuts=st.lists(st.integers(0, 400), max_size=8))
def test_dle_decoding_is_the_same_however_the_reads_fall(stream: bytes, cuts: list[int]) -> None:
    whole = raises_only((ValueError,), lambda: dle.decode(stream))
    decoder, items, last = dle.DleDecoder(), [], 0
    for cut in [*sorted(c for c in cuts if c <= len(stream)), len(stream)]:
        items += quick(lambda s=stream[last:cut]: decoder.feed(s))
        last = cut
    if whole is None:
        assert stream.endswith(b"\x10") and decoder._dle_pending  # the only documented error: a lone DLE
    else:
        assert merged(items) == merged(whole)
        assert decoder.ended == (dle.DleEvent.END_OF_STREAM in whole)


@fuzz(300)
@given(samples=st.binary(max_size=300), pcm=st.binary(max_size=64))
def test_dle_shielding_round_trips_and_pcm_refuses_only_odd_lengths(samples: bytes, pcm: bytes) -> None:
    assert merged(dle.decode(dle.encode(samples))) == ([samples] if samples else [])
    assert dle.s16le_to_u8(dle.u8_to_s16le(samples)) == samples
    converted = raises_only((ValueError,), lambda: dle.s16le_to_u8(pcm))
    assert (converted is None) == (len(pcm) % 2 == 1)


# --------------------------------------------------------------------------- directory payloads

MODELS = [
    lifeline_api.DirectoryPage, lifeline_api.DirectoryExtension, freepbx.TokenReply, freepbx.GqlReply,
    kazoo.Envelope, kazoo.AuthReply, kazoo.Account, kazoo.DeviceSummary, kazoo.Device, kazoo.User,
    wazo.Listing, wazo.Line, wazo.User, wazo.Endpoint, wazo.WazoGroup, freepbx.GqlRingGroups,
    kazoo_groups.CallflowSummary, kazoo_groups.Callflow, kazoo_groups.FlowNode, kazoo_groups.RingGroupData,
    kazoo_groups.KazooGroup,
]  # fmt: skip


@fuzz(200)
@given(body=st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode()), value=JSON)
def test_payload_bodies_and_models_raise_only_payload_error(body: bytes, value: Any) -> None:
    raises_only((PayloadError,), lambda: Response(200, CIMultiDict(), body).json("GET x"))
    for model in MODELS:
        raises_only((PayloadError,), lambda model=model: validate(model, value, "GET x"))
    assert isinstance(cid_number(value if isinstance(value, str) else None), str)


LIFELINE_PAGE = {
    "version": 1, "realm": "pbx.example", "full": True, "total": 2, "next": None, "cursor": "c1",
    "extensions": [
        {"id": "e1", "number": "1001", "display_name": "Anna", "password": "first-secret-1001", "groups": ["sales"],
         "location": {"address": "Hauptstr. 1", "floor": "2", "room": "204"}, "updated_at": "2026-01-01T00:00:00Z"},
        {"id": "e2", "number": "1002", "auth_user": "bob", "ha1": "0" * 32, "ha1_sha256": "1" * 64},
    ],
    "deleted": [{"id": "e9"}],
    "groups": [{"id": "g1", "number": "600", "name": "Sales", "members": ["1001", "1002"]}],
}  # fmt: skip


class FuzzHttp:
    """Stands in for gateway.mirror.http.HttpClient: answers each request with a mutated vendor answer."""

    def __init__(self, data: st.DataObject, route: Callable[[str, str], Any]) -> None:
        self.data, self.route, self.requests = data, route, 0
        # One answer of the conversation is damaged, the rest are the vendor's own: the damage reaches deep.
        self.damaged = data.draw(st.integers(0, 8), label="damaged answer") if data is not None else -1

    async def __aenter__(self) -> FuzzHttp:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def request(self, method: str, url: str, **_kw: Any) -> Response:
        self.requests += 1
        if self.requests > 60:  # a listing that pages forever on damaged totals: the vendor's fault, not a hang
            raise MirrorError("too many requests in one fuzzed fetch")
        body = self.route(method, url.split("://", 1)[-1].split("/", 1)[-1])
        if self.requests - 1 == self.damaged:
            body = mutate(self.data, body, at_least=1)
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return Response(200, CIMultiDict({"ETag": '"e1"'}), raw)


def vendor(name: str) -> Any:
    return json.loads((DATA / "mirror" / name).read_text())


KAZOO, WAZO, FREEPBX, FREEPBX_GROUPS = (
    vendor("kazoo_account.json"),
    vendor("wazo_confd.json"),
    vendor("freepbx_fetchAllExtensions.json"),
    vendor("freepbx_fetchAllRingGroups.json"),
)


def kazoo_route(method: str, path: str) -> Any:
    envelope = {"auth_token": "kz", "status": "success", "request_id": "r"}
    if path.endswith("api_auth"):
        return {**envelope, "data": {"account_id": KAZOO["account"]["id"]}}
    if path.endswith("/users"):
        return {**envelope, "data": KAZOO["users"]}
    if path.endswith("/devices"):
        summary = [{"id": d["id"], "enabled": d["enabled"], "owner_id": d.get("owner_id")} for d in KAZOO["devices"]]
        return {**envelope, "data": summary}
    if "/devices/" in path:
        wanted = path.rsplit("/", 1)[-1]
        return {**envelope, "data": next((d for d in KAZOO["devices"] if d["id"] == wanted), KAZOO["devices"][0])}
    if path.endswith("/callflows"):  # the listing's `modules`: every callflow may reach a ring group
        return {**envelope, "data": [{"id": c["id"], "modules": ["ring_group"]} for c in KAZOO["callflows"]]}
    for kind in ("callflows", "groups"):
        if f"/{kind}/" in path:
            wanted = path.rsplit("/", 1)[-1]
            return {**envelope, "data": next((c for c in KAZOO[kind] if c["id"] == wanted), KAZOO[kind][0])}
    return {**envelope, "data": KAZOO["account"]}


def wazo_route(method: str, path: str) -> Any:
    if path.startswith("endpoints/sip/"):
        return WAZO["endpoints"].get(path.rsplit("/", 1)[-1], next(iter(WAZO["endpoints"].values())))
    items = WAZO.get(path.strip("/"), [])
    return {"total": len(items), "items": items}


def freepbx_route(method: str, path: str) -> Any:
    if path.endswith("token"):
        return {"token_type": "Bearer", "expires_in": 3600, "access_token": "t"}
    return {"data": {**FREEPBX["data"], **FREEPBX_GROUPS["data"]}}


ADAPTERS = {
    "lifeline": (lambda http: lifeline_api.LifelineDirectory(url="https://d", token="t", realm="r", http=http),
                 lambda method, path: LIFELINE_PAGE),
    "kazoo": (lambda http: kazoo.KazooDirectory(url="https://k", account_id=KAZOO["account"]["id"], api_key="k",
                                                realm="r", http=http), kazoo_route),
    "wazo": (lambda http: wazo.WazoDirectory(url="https://w", token="t", realm="r", http=http), wazo_route),
    "freepbx": (lambda http: freepbx.FreePbxDirectory(url="https://f", client_id="c", client_secret="s", realm="r",
                                                      http=http), freepbx_route),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_each_adapter_reads_its_vendors_undamaged_answer(name: str) -> None:
    make, route = ADAPTERS[name]

    class Exact(FuzzHttp):
        async def request(self, method: str, url: str, **_kw: Any) -> Response:
            body = self.route(method, url.split("://", 1)[-1].split("/", 1)[-1])
            return Response(200, CIMultiDict(), json.dumps(body).encode())

    batch = asyncio.run(make(Exact(None, route)).fetch(None, lambda *_a: None))
    assert batch.entries and batch.groups  # the fuzz below starts from answers that really parse, groups too


@fuzz(60)
@given(name=st.sampled_from(sorted(ADAPTERS)), data=st.data())
def test_adapters_fed_damaged_answers_raise_only_mirror_errors(name: str, data: st.DataObject) -> None:
    make, route = ADAPTERS[name]
    source = make(FuzzHttp(data, route))
    batch = raises_only((MirrorError,), lambda: asyncio.run(source.fetch(None, lambda *_a: None)))
    event(f"{name}: {'read' if batch is not None else 'refused'}")  # --hypothesis-show-statistics: both happen


EXTENSIONS_CSV = (
    "number,password,name,auth_user,realm,groups,emergency_cid\n"
    "1001,first-secret-1001,Anna,,,sales,+4930123456\n"
    '1002,"second,secret",Ben,bob,pbx.example,"sales;support",\n'
)


@fuzz(200)
@given(
    text=damaged(EXTENSIONS_CSV) | damaged((DATA / "extensions_good.json").read_text()) | st.text(max_size=200),
    fmt=st.sampled_from(["csv", "json"]),
    header=st.booleans(),
)
def test_extension_files_raise_only_import_rows_error(text: str, fmt: str, header: bool) -> None:
    parsed = raises_only((ImportRowsError,), lambda: parse_extensions(text, fmt, "asterisk", header=header))
    if parsed is not None:
        assert parsed.extensions and all(len(e.ha1) == 32 for e in parsed.extensions)


# --------------------------------------------------------------------------- config

FULL_CONFIG: dict[str, Any] = {
    "sip": {"listen": "127.0.0.1", "port": 5060, "transports": ["udp", "tcp", "tls"], "ban_s": 60, "ban_max_s": 600},
    "cloud": {"sbc": "sip:sbc.example.com:5060;transport=udp", "realm": "asterisk"},
    "health": {"api_url": "https://api.example.com/health", "lan_target": "192.0.2.1"},
    "alerts": {"webhook_url": "https://alerts.example/h", "webhook_secret_file": "/etc/lifeline/whsec"},
    "mirror": {"source": "kazoo", "url": "https://kazoo.example", "account_id": "a1", "api_key": "k"},
    "hardware": {"enabled": False, "drill_hold_s": 3, "reset_hold_s": 10},
    "cdr": {"retention_days": 30, "webhook": {"url": "https://cdr.example/x", "secret": "whsec_abc"},
            "csv": {"directory": "/var/lib/lifeline/cdr-csv"}},
    "trunk": {"extension": "1009", "country": "DE", "reach": {"1001": "international"}, "blocked_prefixes": ["+4919"],
              "modems": [{"name": "lte0", "family": "simcom", "wideband": True, "mic_gain": 4,
                          "number": "+4915112345678"}]},
    "emergency": {"notify": ["1000"], "callback_window_s": 1800},
    "backup": {"key_file": "/etc/lifeline/backup.key", "directory": "/var/lib/lifeline-backups", "keep": 7},
}  # fmt: skip


def test_the_fuzzed_config_starts_valid() -> None:
    assert parse(FULL_CONFIG).trunk.modems[0].wideband


@fuzz(250)
@given(data=st.data())
def test_config_dicts_raise_only_config_error(data: st.DataObject) -> None:
    document = mutate(data, FULL_CONFIG) if data.draw(st.integers(0, 4)) else data.draw(JSON)
    if not isinstance(document, dict):
        document = {"sip": document}
    raises_only((ConfigError,), lambda: parse(document))


FULL_TOML = """
[sip]
listen = "127.0.0.1"
transports = ["udp", "tls"]
[cloud]
sbc = "sip:sbc.example.com"
[cdr.webhook]
url = "https://cdr.example/x"
secret = "whsec_abc"
[[trunk.modems]]
name = "lte0"
family = "quectel"
[trunk]
extension = "1009"
"""


@fuzz(150)
@given(text=damaged(FULL_TOML) | st.text(max_size=120), encoding=st.sampled_from(["utf-8", "latin-1", "utf-16"]))
def test_config_files_raise_only_config_error(text: str, encoding: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lifeline.toml"
        path.write_bytes(text.encode(encoding, errors="replace"))
        loaded = raises_only((ConfigError,), lambda: load(path))
    if loaded is not None:
        assert loaded[1] == path


def test_the_fuzzed_toml_starts_valid() -> None:
    assert parse(tomllib.loads(FULL_TOML)).trunk.extension == "1009"


# --------------------------------------------------------------------------- caller stamp and trunk header

KEY = "k" * 64


def invite(caller: str, dialled: str, call_id: str, sig: str, extra: str = "") -> str:
    return (
        f"INVITE sip:{dialled}@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx\r\n"
        f"Call-ID: {call_id}\r\n{stamp.HEADER}: {caller};sig={sig}\r\n{extra}Content-Length: 0\r\n\r\n"
    )


TOKENS = st.text(alphabet=st.characters(codec="ascii", exclude_characters="\r\n;@> \t"), min_size=1, max_size=20)


@fuzz(300)
@given(
    message=st.text(max_size=300) | st.builds(invite, TOKENS, TOKENS, TOKENS, TOKENS).flatmap(damaged),
    key=st.sampled_from(["", KEY]),
)
def test_the_caller_stamp_never_raises_and_never_accepts_an_unsigned_caller(message: str, key: str) -> None:
    found = quick(lambda: stamp.stamped_call(message, key))
    assert found is None or (key and stamp.HEADER in message and found.caller in message)


@fuzz(200)
@given(
    caller=st.from_regex(r"[A-Za-z0-9_.+-]{1,64}", fullmatch=True),
    dialled=st.from_regex(r"\+?[0-9]{1,20}", fullmatch=True),
    call_id=st.from_regex(r"[A-Za-z0-9.@-]{1,40}", fullmatch=True),
    flip=st.integers(0, 63),
)
def test_a_signed_stamp_reads_back_and_one_changed_digit_of_its_signature_does_not(
    caller: str, dialled: str, call_id: str, flip: int
) -> None:
    sig = stamp.signature(KEY, call_id, caller, dialled)
    assert stamp.stamped_call(invite(caller, dialled, call_id, sig), KEY) == stamp.StampedCall(caller, dialled)
    forged = sig[:flip] + ("0" if sig[flip] != "0" else "1") + sig[flip + 1 :]
    assert stamp.stamped_call(invite(caller, dialled, call_id, forged), KEY) is None
    doubled = invite(caller, dialled, call_id, sig, extra=f"{stamp.HEADER}: {caller};sig={sig}\r\n")
    assert stamp.stamped_call(doubled, KEY) is None


@fuzz(300)
@given(
    value=st.text(max_size=600)
    | st.text(alphabet="=&%+abcdefghijklmnopqrstuvwxyz0123456789", max_size=120)
    | st.sampled_from(["call=1&modem=lte0", "imei=%ZZ", "&&", "=", "emergency=1&emergency=0"]),
    details=st.dictionaries(st.sampled_from(trunkinfo.KEYS), st.none() | st.text(max_size=80), max_size=9),
)
def test_trunk_header_raises_only_value_error_and_round_trips(value: str, details: dict[str, str | None]) -> None:
    decoded = raises_only((ValueError,), lambda: trunkinfo.decode(value))
    if decoded is not None:
        assert decoded and set(decoded) <= set(trunkinfo.KEYS)
    encoded = raises_only((ValueError,), lambda: trunkinfo.encode(details))
    kept = {k: v for k, v in details.items() if v not in (None, "")}
    if encoded is not None and kept:
        assert trunkinfo.decode(encoded) == kept
