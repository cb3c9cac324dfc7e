"""The emergency notice (location from the directory: API and CSV), and emergency alerts jumping the queue."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from gateway.core.alerts import Alert, AlertDeliveryError, AlertQueue
from gateway.emergency import SMS_CHARS, Caller, build_notice, lookup_caller
from gateway.mirror.adapters.lifeline_api import DirectoryExtension, to_entry
from gateway.mirror.files import parse_extensions
from gateway.store import Store

EVENT = {
    "call": "c1",
    "extension": "1001",
    "number": "112",
    "modem": "lte0",
    "service": "full",
    "problem": None,
    "preempted": False,
    "callback_number": "+4915100000009",
    "callback_window_s": 1800,
    "at": 1_764_064_800.0,
}


def test_the_lifeline_api_location_reaches_the_notice(tmp_path: Path) -> None:
    item = DirectoryExtension.model_validate(
        {
            "id": "u1",
            "number": "1001",
            "display_name": "Alice Example",
            "password": "a-long-password",
            "emergency_cid": "+4930123456",
            "location": {"address": "Hauptstr. 1, 10115 Berlin", "floor": "2", "room": "204"},
        }
    )
    store = Store(tmp_path / "lifeline.db")
    store.replace_extensions([to_entry(item, "realm", "lifeline").extension], "lifeline")
    caller = lookup_caller(store, "1001")
    notice = build_notice(EVENT, caller, EVENT["at"])
    assert "From: 1001 Alice Example" in notice.text
    assert "Location: Hauptstr. 1, 10115 Berlin, floor 2, room 204" in notice.text
    assert "Callback: +4915100000009; a call to it in the next 30 min rings 1001" in notice.text
    assert "the PSAP sees the cell's location only" in notice.text
    assert notice.data["location"] == {"address": "Hauptstr. 1, 10115 Berlin", "floor": "2", "room": "204"}
    assert notice.data["emergency_cid"] == "+4930123456" and notice.data["callback_rings"] == "1001"
    assert (
        notice.summary.startswith("EMERGENCY 112 from 1001 Alice Example, Hauptstr. 1") and len(notice.summary) <= 150
    )


def test_the_csv_location_reaches_the_store_and_an_unknown_caller_still_gets_a_notice(tmp_path: Path) -> None:
    text = "number,password,location_address,location_room\n1002,a-long-password,Werk 2,Pforte\n"
    store = Store(tmp_path / "lifeline.db")
    store.replace_extensions(parse_extensions(text, "csv", "realm").extensions, "import")
    assert lookup_caller(store, "1002").location == "Werk 2, room Pforte"
    unknown = build_notice({**EVENT, "extension": "1777"}, lookup_caller(store, "1777"), EVENT["at"])
    assert "From: 1777" in unknown.text and "Location: not in the directory" in unknown.text
    assert unknown.data["location"] is None


def test_a_limited_service_call_says_the_psap_cannot_call_back(tmp_path: Path) -> None:
    event = {**EVENT, "service": "limited", "problem": "no SIM card", "callback_number": None, "callback_window_s": 0}
    notice = build_notice(event, lookup_caller(Store(tmp_path / "l.db"), "1001"), EVENT["at"])
    assert "Callback: none: limited service (no SIM card), the PSAP cannot call back" in notice.text
    assert notice.data["callback_number"] is None and notice.data["callback_rings"] is None


def test_the_sms_summary_fits_one_sms() -> None:
    wordy = Caller("1001", "A" * 80, address="B" * 200, floor="12", room="1204")
    assert len(build_notice(EVENT, wordy, EVENT["at"]).summary) == SMS_CHARS


@dataclass
class Channel:
    """An alert channel that fails while told to, and keeps what it delivered."""

    name: str
    failing: bool = False
    sent: list[str] = field(default_factory=list)
    delay_s: float = 0.0
    delivered: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, alert: Alert) -> None:
        await asyncio.sleep(self.delay_s)
        if self.failing:
            raise AlertDeliveryError("down")
        self.sent.append(alert.type)
        self.delivered.set()


async def test_an_emergency_alert_jumps_the_queue_and_a_channel_in_backoff(tmp_path: Path) -> None:
    webhook, sms = Channel("webhook", failing=True), Channel("sms")
    queue = AlertQueue(Store(tmp_path / "lifeline.db"), [webhook, sms], retry_max_s=3600)
    await queue.raise_alert(Alert.new("mode.changed", {"summary": "old news"}))
    await queue.deliver_due()  # the webhook is down: its mode alert now waits out a long backoff
    sms.sent.clear()
    webhook.failing = False
    await queue.raise_alert(Alert.new("mode.changed", {"summary": "more old news"}))
    await queue.raise_alert(Alert.new("emergency.call", {"summary": "EMERGENCY 112"}))
    await asyncio.gather(*queue._urgent)  # the urgent pass raise_alert started
    assert webhook.sent == ["emergency.call"]  # past the waiting mode alerts, whose order stands
    assert sms.sent == ["emergency.call"]  # first, before the older alert still pending on this channel
    await queue.deliver_due()
    assert sms.sent == ["emergency.call", "mode.changed"] and webhook.sent == ["emergency.call"]


async def test_a_slow_channel_does_not_hold_back_the_other_ones(tmp_path: Path) -> None:
    slow, sms = Channel("webhook", delay_s=5.0), Channel("sms")
    queue = AlertQueue(Store(tmp_path / "lifeline.db"), [slow, sms], retry_max_s=60)
    await queue.raise_alert(Alert.new("emergency.call", {"summary": "EMERGENCY 112"}))
    (urgent,) = queue._urgent
    async with asyncio.timeout(2):  # the webhook takes 5 s; the SMS goes meanwhile
        await sms.delivered.wait()
    assert sms.sent == ["emergency.call"] and not slow.sent
    urgent.cancel()
    await asyncio.gather(urgent, return_exceptions=True)
