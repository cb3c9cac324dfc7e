"""The SIP edge's pure parts: the caller stamp, the keys, the config keys and the ban table's reading."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gateway.config import parse
from gateway.errors import ConfigError, SipError
from gateway.sip.render import ROUTE_KEY_FILE, edge_keys
from gateway.sip.stamp import HEADER, StampedCall, signature, stamped_call
from gateway.sip.supervisor import _htable
from gateway.trunk.agent.legs import uri_user

KEY = "k" * 64


def invite(*headers: str, uri: str = "sip:00442079460018@127.0.0.1:40000") -> str:
    lines = [f"INVITE {uri} SIP/2.0", "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1", *headers, "Content-Length: 0"]
    return "\r\n".join(lines) + "\r\n\r\n"


def stamp(caller: str = "1002", call_id: str = "abc@x", dialled: str = "00442079460018", key: str = KEY) -> str:
    return f"{HEADER}: {caller};sig={signature(key, call_id, caller, dialled)}"


def test_a_stamp_signed_with_the_key_names_the_caller_and_the_number() -> None:
    assert stamped_call(invite("Call-ID: abc@x", stamp()), KEY) == StampedCall("1002", "00442079460018")
    # A compact Call-ID and a lower-case header name are the same message to a parser.
    lower = stamp().replace(HEADER, HEADER.lower())
    assert stamped_call(invite("i: abc@x", lower), KEY) == StampedCall("1002", "00442079460018")


@pytest.mark.parametrize(
    "message",
    [
        invite("Call-ID: abc@x"),  # no stamp (an INVITE straight to the agent)
        invite("Call-ID: abc@x", stamp(key="guessed")),  # signed with another key
        invite("Call-ID: other@x", stamp()),  # a stamp lifted from another call
        invite("Call-ID: abc@x", stamp(), uri="sip:09001234567@127.0.0.1:40000"),  # ...or another number
        invite("Call-ID: abc@x", stamp().replace("1002;", "1001;")),  # signed for 1002, claims 1001
        invite("Call-ID: abc@x", stamp(), stamp()),  # two stamps
        invite("Call-ID: abc@x", stamp(caller="10 01")),  # not a plain extension
        invite("Call-ID: abc@x", f"{HEADER}: 1002"),  # no signature at all
    ],
)
def test_anything_else_is_no_stamp(message: str) -> None:
    assert stamped_call(message, KEY) is None


def test_no_key_trusts_nothing() -> None:
    assert stamped_call(invite("Call-ID: abc@x", stamp(key="")), "") is None


def test_a_display_name_is_not_the_uri() -> None:
    assert uri_user('"sip:1001@lifeline" <sip:1002@lifeline>') == "1002"
    assert uri_user('"a \\"quoted\\" sip:1001@x" <sip:1002@x;transport=udp>;tag=1') == "1002"
    assert uri_user("sip:1003@x") == "1003"


def test_the_route_key_is_made_once_and_private_the_caller_key_is_new_each_start(tmp_path: Path) -> None:
    first, second = edge_keys(tmp_path), edge_keys(tmp_path)
    assert first.route == second.route and first.caller != second.caller
    assert len(first.route) == len(first.caller) == 64
    assert stat.S_IMODE((tmp_path / ROUTE_KEY_FILE).stat().st_mode) == 0o600
    (tmp_path / ROUTE_KEY_FILE).write_text("not hex\n")
    with pytest.raises(SipError, match=ROUTE_KEY_FILE):
        edge_keys(tmp_path)


def test_edge_config_keys_are_checked_by_name() -> None:
    sip = parse({"sip": {"ban_after_failures": 5, "ban_s": 60, "ban_max_s": 600}}).sip
    assert (sip.ban_after_failures, sip.ban_s, sip.ban_max_s) == (5, 60, 600)
    with pytest.raises(ConfigError, match="ban_max_s"):
        parse({"sip": {"ban_s": 600, "ban_max_s": 60}})
    with pytest.raises(ConfigError, match="flood_limit"):
        parse({"sip": {"flood_limit": 1}})


def test_an_htable_dump_reads_as_key_and_value() -> None:
    dump = [
        {"entry": 3, "size": 2, "slot": [{"name": "127.0.0.9", "value": 170, "type": "int"},
                                         {"name": "x", "value": "y", "type": "str"}]},
        {"entry": 9, "size": 1, "slot": [{"name": "1003", "value": 4, "type": "int"}]},
    ]  # fmt: skip
    assert _htable(dump) == {"127.0.0.9": 170, "1003": 4}
    assert _htable([]) == {} == _htable(None)


def test_status_shows_bans_and_failed_logins() -> None:
    from gateway.cli.main import _edge_lines

    edge = {"bans": [{"address": "192.0.2.7", "until": 2_000_000_000, "bans": 2}], "failed_logins": {"1003": 4}}
    lines = _edge_lines(edge)
    assert lines[0] == "banned:        1 address(es)"
    assert lines[1].startswith("  192.0.2.7") and "(ban 2 today)" in lines[1]
    assert lines[2] == "failed logins: 1003 4"
    assert _edge_lines({"bans": [], "failed_logins": {}}) == ["banned:        none"]
    assert _edge_lines(None) == ["banned:        unknown (Kamailio did not answer)"]  # not "no bans"
