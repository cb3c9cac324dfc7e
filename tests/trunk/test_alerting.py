"""The emergency ring's parts without SIP: its display and From, its config, and how the daemon reports it.

The ring itself, end to end (real daemon, Kamailio, agent, modem simulator, phones): test_emergency_e2e.py.
"""

from __future__ import annotations

import pytest

from gateway.config import EmergencyConfig
from gateway.emergency import Caller, Notice, notify_extensions, ring_display
from gateway.trunk.alerting import DISPLAY_CHARS, caller_id, display_name
from gateway.trunk.errors import TrunkError


def test_the_display_names_number_caller_and_floor_and_room_before_the_address() -> None:
    alice = Caller("1001", "Alice Example", address="Hauptstr. 1, 10115 Berlin", floor="2", room="204")
    assert ring_display("112", alice) == "EMERGENCY 112: 1001 Alice Example, Floor 2 Room 204"
    assert (
        ring_display("112", Caller("1001", "Alice", address="Hauptstr. 1")) == "EMERGENCY 112: 1001 Alice, Hauptstr. 1"
    )
    assert ring_display("110", Caller("1005")) == "EMERGENCY 110: 1005"


def test_the_display_name_is_short_quoted_ascii_whatever_the_directory_holds() -> None:
    assert display_name("EMERGENCY 112: 1001 Jürgen Weiß") == '"EMERGENCY 112: 1001 Jurgen Weiss"'
    hostile = display_name('EMERGENCY 112: 1001 Eve "x" \\ <sip:evil@x>\r\nVia: forged')
    assert hostile == '"EMERGENCY 112: 1001 Eve \\"x\\" \\\\ <sip:evil@x> Via: forged"'
    assert "\r" not in hostile and "\n" not in hostile
    long = display_name("EMERGENCY 112: 1001 " + "A" * 200)
    assert len(long) == DISPLAY_CHARS + 2


def test_the_from_user_is_the_calling_extension_when_kamailio_allows_it() -> None:
    assert caller_id("EMERGENCY 112: 1001 Alice", "1001", "lab") == '"EMERGENCY 112: 1001 Alice" <sip:1001@lab>'
    assert caller_id("EMERGENCY 112: 12", "12", "lab").endswith("<sip:anonymous@lab>")  # route[AUTH]: 3-20 digits
    assert caller_id("x", "10*1", "lab").endswith("<sip:anonymous@lab>")


def test_ring_extensions_are_validated_like_notify() -> None:
    config = EmergencyConfig.model_validate({"ring": ["1000", "1050"], "ring_s": 20})
    assert (config.ring, config.ring_s) == (("1000", "1050"), 20)
    assert EmergencyConfig().ring_s == 30
    with pytest.raises(ValueError, match="not an extension"):
        EmergencyConfig.model_validate({"ring": ["front desk"]})
    with pytest.raises(ValueError):
        EmergencyConfig.model_validate({"ring_s": 0})


class FakeTrunk:
    def __init__(self, ring_error: str = "") -> None:
        self.ring_error = ring_error
        self.rung: list[tuple[list[str], str, str, int]] = []

    async def send_message(self, extensions: list[str], text: str) -> dict[str, str]:
        return dict.fromkeys(extensions, "sent")

    async def ring(self, extensions: list[str], display: str, caller: str, ring_s: int) -> dict[str, str]:
        if self.ring_error:
            raise TrunkError(self.ring_error)
        self.rung.append((extensions, display, caller, ring_s))
        return {extensions[0]: "ringing", **dict.fromkeys(extensions[1:], "480 Temporarily Unavailable")}


async def test_the_notice_reports_each_message_and_ring() -> None:
    notice = Notice("text", "summary", {"extension": "1001"}, "EMERGENCY 112: 1001 Alice")
    config = EmergencyConfig(notify=("1002",), ring=("1002", "1003"), ring_s=3)
    trunk = FakeTrunk()
    results = await notify_extensions(trunk, config, notice)
    assert results == {"1002": "sent", "ring:1002": "ringing", "ring:1003": "480 Temporarily Unavailable"}
    assert trunk.rung == [(["1002", "1003"], "EMERGENCY 112: 1001 Alice", "1001", 3)]
    failing = await notify_extensions(FakeTrunk("trunk agent unreachable"), config, notice)
    assert failing["1002"] == "sent" and failing["ring:1003"] == "trunk agent unreachable"
    assert await notify_extensions(trunk, EmergencyConfig(notify=("1002",)), notice) == {"1002": "sent"}
