"""The modem-side call state machine fed with each family's URCs from the transcripts."""

from __future__ import annotations

from gateway.trunk import at
from gateway.trunk.call import CallEvent, CallState, CallTracker, EndReason
from gateway.trunk.profiles import Family
from tests.trunk.transcripts import load


def run(name: str, family: Family) -> list[CallEvent]:
    """Replay a transcript, driving the tracker as the driver does."""
    tracker = CallTracker(family)
    splitter, router = at.LineSplitter(), at.AtRouter()
    events: list[CallEvent] = []
    for step in load(name):
        if step.kind == "send":
            router.begin(step.text)
            if step.text.upper().startswith("ATD"):
                events += tracker.dialing(step.text[3:].rstrip(";"))
        elif step.kind == "read":
            for line in splitter.feed(step.raw):
                event = router.feed(line)
                if isinstance(event, at.Urc):
                    events += tracker.feed(event)
                elif isinstance(event, at.Reply):
                    cmd = event.command.upper()
                    if cmd.startswith("ATD"):
                        events += tracker.dial_result(event.final)
                    elif cmd == "ATA" and event.ok:
                        events += tracker.answered()
                    elif cmd == "AT+CHUP" and event.ok:
                        events += tracker.hung_up()
    return events


def test_quectel_outgoing_incoming_busy_and_no_network() -> None:
    events = run("quectel_ec25_calls.txt", Family.QUECTEL)
    assert [(e.state, e.reason) for e in events] == [
        (CallState.DIALING, None),
        (CallState.ALERTING, None),
        (CallState.ACTIVE, None),
        (CallState.ENDED, EndReason.NORMAL),
        (CallState.INCOMING, None),
        (CallState.INCOMING, None),  # the caller ID arrives with +CLIP
        (CallState.ACTIVE, None),
        (CallState.ENDED, EndReason.LOCAL),
        (CallState.DIALING, None),
        (CallState.ENDED, EndReason.BUSY),
        (CallState.DIALING, None),
        (CallState.ENDED, EndReason.UNREACHABLE),
    ]
    assert events[5].number == "+4915112345678"


def test_simcom_emergency_call_and_missed_call() -> None:
    events = run("simcom_sim7600.txt", Family.SIMCOM)
    assert [(e.state, e.reason, e.number) for e in events] == [
        (CallState.DIALING, None, "112"),
        (CallState.ALERTING, None, "112"),
        (CallState.ACTIVE, None, "112"),
        (CallState.ENDED, EndReason.NORMAL, "112"),
        (CallState.INCOMING, None, None),
        (CallState.INCOMING, None, "0301234567"),
        (CallState.ENDED, EndReason.MISSED, "0301234567"),
    ]


def test_huawei_orig_conf_conn_cend() -> None:
    events = run("huawei_e173.txt", Family.HUAWEI)
    assert [e.state for e in events] == [
        CallState.DIALING,
        CallState.ALERTING,
        CallState.ACTIVE,
        CallState.ENDED,
    ]
    assert events[-1].reason is EndReason.LOCAL  # our AT+CHUP came first; ^CEND adds nothing


def test_v253_caller_id_between_rings() -> None:
    events = run("usr5637_v253.txt", Family.V253)
    assert events[0] == CallEvent(CallState.INCOMING)
    assert events[1] == CallEvent(CallState.INCOMING, "5551234")


def test_cend_causes_say_busy_and_unreachable() -> None:
    for cause, reason in ((17, EndReason.BUSY), (1, EndReason.UNREACHABLE), (21, EndReason.REJECTED)):
        tracker = CallTracker(Family.HUAWEI)
        tracker.dialing("123")
        assert tracker.feed(at.Urc(f"^CEND:1,0,104,{cause}")) == [CallEvent(CallState.ENDED, "123", reason)]
        assert tracker.state is CallState.IDLE


def test_stray_no_carrier_without_a_call_is_ignored() -> None:
    assert CallTracker(Family.QUECTEL).feed(at.Urc("NO CARRIER")) == []


def test_a_late_end_report_of_the_previous_call_does_not_end_the_next() -> None:
    tracker = CallTracker(Family.QUECTEL)
    tracker.dialing("+4930123456")
    tracker.feed(at.Urc('+QIND: "ccinfo",1,0,0,0,0,"+4930123456",145'))
    tracker.hanging_up()
    tracker.hung_up()
    assert tracker.dialing("112") == [CallEvent(CallState.DIALING, "112")]
    assert tracker.feed(at.Urc('+QIND: "ccinfo",1,0,6,0,0,"+4930123456",145')) == []
    assert tracker.feed(at.Urc('+QIND: "ccinfo",1,0,3,0,0,"112",129')) == [CallEvent(CallState.ALERTING, "112")]
    tracker.feed(at.Urc("NO CARRIER"))
    tracker.dialing("030123456")
    # The same line in international form is the same call.
    assert tracker.feed(at.Urc('+QIND: "ccinfo",2,0,3,0,0,"+4930123456",145'))[0].state is CallState.ALERTING


def test_a_late_end_report_after_we_closed_the_call_leaves_no_number_behind() -> None:
    tracker = CallTracker(Family.QUECTEL)
    tracker.dialing("+4930123456")
    tracker.hanging_up()
    tracker.hung_up()
    assert tracker.feed(at.Urc('+QIND: "ccinfo",1,0,6,0,0,"+4930123456",145')) == []
    assert tracker.feed(at.Urc("RING")) == [CallEvent(CallState.INCOMING, None)]
