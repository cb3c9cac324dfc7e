"""The phone list's parts as pure functions: usrloc's dump read into bindings, the mode a binding was taken in."""

from __future__ import annotations

from typing import Any

from gateway.sip.bindings import parse_dump
from gateway.web.phones import mode_at, status_lines


def contact(address: str, **changes: Any) -> dict[str, Any]:
    values = {
        "Address": address,
        "Expires": 300,
        "User-Agent": "Yealink SIP-T46U 108.86.0.20",
        "Received": "[not set]",
        "Socket": "udp:192.0.2.10:5060",
        "Last-Modified": 1_800_000_000,
        "Call-ID": "secret-looking-call-id",
    }
    return {"Contact": {**values, **changes}}


def dump(*aors: tuple[str, list[dict[str, Any]]]) -> dict[str, Any]:
    infos = [{"Info": {"AoR": aor, "Contacts": contacts}} for aor, contacts in aors]
    return {"Domains": [{"Domain": {"Domain": "location", "AoRs": infos}}]}


def test_each_live_contact_becomes_a_binding_with_where_and_how_it_is_reached() -> None:
    bindings = parse_dump(
        dump(
            ("1002", [contact("sip:1002@[2001:db8::7]:5062;transport=TCP", Socket="tcp:[2001:db8::1]:5060")]),
            ("1001", [contact("sip:1001@10.0.0.5", Received="sip:198.51.100.7:40000")]),
            ("1003", [contact("sips:1003@10.0.0.9", Expires="permanent", **{"User-Agent": "n/a"})]),
            ("1004", [contact("sip:1004@10.0.0.4:5060", Expires="expired")]),
            ("1005", [contact("sip:1005@10.0.0.6:5070", Socket="tls:192.0.2.10:5061")]),
        )
    )
    found = {b.aor: b for b in bindings}
    assert [b.aor for b in bindings] == ["1001", "1002", "1003", "1005"]  # expired ones are gone
    assert (found["1001"].source, found["1001"].transport) == ("198.51.100.7:40000", "udp")  # received wins
    assert (found["1002"].source, found["1002"].transport) == ("[2001:db8::7]:5062", "tcp")
    assert (found["1003"].source, found["1003"].transport, found["1003"].expires_s) == ("10.0.0.9:5061", "tls", None)
    assert found["1003"].user_agent is None and found["1001"].user_agent == "Yealink SIP-T46U 108.86.0.20"
    assert found["1005"].transport == "tls"  # no parameter: the socket it came in on
    assert found["1001"].modified == 1_800_000_000.0
    assert "secret-looking-call-id" not in str([b.as_dict() for b in bindings])  # Call-IDs stay behind
    assert parse_dump(None) == [] and parse_dump({"Domains": []}) == []


def test_the_mode_a_binding_was_saved_in_comes_from_the_mode_changes() -> None:
    changes = [(1000.4, "normal", "survival"), (2000.0, "survival", "recovering"), (2600.0, "recovering", "normal")]
    assert mode_at(900.0, changes, "normal") == "normal"
    assert mode_at(1000.0, changes, "normal") == "survival"  # saved within the second of the change: after it
    assert mode_at(1500.0, changes, "normal") == "survival"
    assert mode_at(2300.0, changes, "normal") == "recovering"
    assert mode_at(2700.0, changes, "normal") == "normal"
    assert mode_at(5.0, [], "survival") == "survival"


def test_status_lines_are_one_a_phone_and_say_how_many_more() -> None:
    phone = {"extension": "1001", "name": "Front desk", "source": "10.0.0.5:5060", "transport": "udp"}
    phones = [
        {**phone, "extension": str(1000 + n), "mode": "normal", "taken": "cloud", "expires_s": 125} for n in range(25)
    ]
    lines = status_lines(phones)
    assert len(lines) == 21 and "NORMAL (cloud)" in lines[0] and "expires in 2 min" in lines[0]
    assert lines[-1] == "  … and 5 more (`lifeline status --json` lists all)"
    assert status_lines(None) == [] and status_lines([]) == []
