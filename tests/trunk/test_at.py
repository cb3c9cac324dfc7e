"""AT wire code against captured-style transcripts of every modem family."""

from __future__ import annotations

import datetime as dt

import pytest

from gateway.trunk import at
from tests.trunk.transcripts import all_transcripts, load


def describe(event: at.Urc | at.Reply) -> str:
    if isinstance(event, at.Urc):
        return "urc " + event.line + "".join(f" || {extra}" for extra in event.extra)
    return "reply " + " | ".join([event.command, *event.lines, str(event.final)])


def replay(name: str, chunk: int | None = None) -> tuple[list[str], list[str]]:
    """Feed a transcript through splitter + router; returns (produced, expected) event descriptions."""
    splitter, router = at.LineSplitter(), at.AtRouter()
    produced: list[str] = []
    expected: list[str] = []
    for step in load(name):
        if step.kind == "send":
            router.begin(step.text)
        elif step.kind == "expect":
            expected.append(step.text)
        else:
            reads = [step.raw] if chunk is None else [step.raw[i : i + chunk] for i in range(0, len(step.raw), chunk)]
            for data in reads:
                for line in splitter.feed(data):
                    event = router.feed(line)
                    if event is not None:
                        produced.append(describe(event))
    return produced, expected


@pytest.mark.parametrize("name", all_transcripts())
def test_router_reproduces_every_transcript(name: str) -> None:
    produced, expected = replay(name)
    assert produced == expected


@pytest.mark.parametrize("name", all_transcripts())
def test_router_is_indifferent_to_how_reads_are_split(name: str) -> None:
    # One byte per read is the worst a USB serial port can do to us.
    produced, expected = replay(name, chunk=1)
    assert produced == expected
    produced, expected = replay(name, chunk=7)
    assert produced == expected


def test_transcripts_cover_every_family() -> None:
    names = " ".join(all_transcripts())
    for family in ("quectel", "simcom", "huawei", "v253"):
        assert family in names


def test_final_result_codes() -> None:
    assert at.parse_final("OK") == at.Final(at.FinalKind.OK)
    assert at.parse_final("+CME ERROR: 10") == at.Final(at.FinalKind.CME_ERROR, 10)
    assert at.parse_final("+CME ERROR: SIM not inserted") == at.Final(at.FinalKind.CME_ERROR, 10, "SIM not inserted")
    assert at.parse_final("+CMS ERROR: 500") == at.Final(at.FinalKind.CMS_ERROR, 500)
    assert at.parse_final("CONNECT 9600") == at.Final(at.FinalKind.CONNECT, text="9600")
    for word in ("NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE", "VCON", "ERROR"):
        final = at.parse_final(word)
        assert final is not None and final.kind.value == word
    assert at.parse_final("+CSQ: 1,2") is None
    assert not at.FinalKind.ERROR.success and at.FinalKind.VCON.success


def test_router_refuses_a_second_outstanding_command() -> None:
    router = at.AtRouter()
    router.begin("AT+CSQ")
    with pytest.raises(ValueError, match=r"AT\+COPS\?: AT\+CSQ is still outstanding"):
        router.begin("AT+COPS?")
    router.abandon()
    router.begin("AT+COPS?")


def test_splitter_bounds_a_line_without_terminator() -> None:
    splitter = at.LineSplitter(max_line=64)
    with pytest.raises(ValueError, match="line longer than 64 bytes without CR/LF"):
        splitter.feed(b"\x00" * 100)
    assert splitter.feed(b"OK\r\n") == ["OK"]


def test_reply_line_lookup_names_the_command() -> None:
    reply = at.Reply("AT+CSQ", ("+CSQ: 5,99",), at.Final(at.FinalKind.OK))
    assert reply.line("+CSQ") == "+CSQ: 5,99"
    with pytest.raises(ValueError, match=r"AT\+CSQ: no '\+COPS' line"):
        reply.line("+COPS")


def test_csq() -> None:
    sig = at.parse_csq("+CSQ: 23,99")
    assert (sig.rssi, sig.ber, sig.dbm, sig.bars) == (23, 99, -67, 4)
    assert at.parse_csq("+CSQ: 99,99").dbm is None
    with pytest.raises(ValueError, match=r"rssi 40 out of range 0-31/99 in '\+CSQ: 40,99'"):
        at.parse_csq("+CSQ: 40,99")
    with pytest.raises(ValueError, match="expected a \\+CSQ line"):
        at.parse_csq("+COPS: 0")
    with pytest.raises(ValueError, match="rssi is not a number"):
        at.parse_csq("+CSQ: x,99")


def test_creg_read_reply_and_urc_forms() -> None:
    read = at.parse_creg('+CEREG: 2,1,"1A2B","01A2D3F4",7', solicited=True)
    assert read.stat is at.RegStat.HOME and read.stat.registered
    assert (read.lac, read.ci, read.act) == ("1A2B", "01A2D3F4", at.AccessTech.LTE)
    urc = at.parse_creg('+CREG: 5,"0F3C","2D1A",2', solicited=False)
    assert urc.stat is at.RegStat.ROAMING and urc.act is at.AccessTech.UTRAN
    assert at.parse_creg("+CREG: 2", solicited=False).stat is at.RegStat.SEARCHING
    assert not at.parse_creg("+CREG: 0,3", solicited=True).stat.registered
    with pytest.raises(ValueError, match="unknown registration status 9"):
        at.parse_creg("+CREG: 9", solicited=False)


def test_cops() -> None:
    op = at.parse_cops('+COPS: 0,0,"Vodafone.de Vodafone.de",7')
    assert op.name == "Vodafone.de Vodafone.de" and op.act is at.AccessTech.LTE
    assert at.parse_cops("+COPS: 0").name is None


def test_cpin() -> None:
    assert at.parse_cpin("+CPIN: READY") is at.SimState.READY
    assert at.parse_cpin("+CPIN: SIM PIN") is at.SimState.SIM_PIN
    with pytest.raises(ValueError, match="unknown SIM state 'BANANA'"):
        at.parse_cpin("+CPIN: BANANA")


def test_clip() -> None:
    assert at.parse_clip('+CLIP: "+4915112345678",145,"",0,"",0').number == "+4915112345678"
    assert at.parse_clip('+CLIP: "4915112345678",145').number == "+4915112345678"
    assert at.parse_clip('+CLIP: "0301234567",129,"",0,"",0').number == "0301234567"
    assert at.parse_clip('+CLIP: "",128,"",0,"",1').number is None
    assert at.parse_clip('+CLIP: "555",129,"",0,"Alice, Inc",0').name == "Alice, Inc"


def test_clcc_and_ccinfo() -> None:
    entry = at.parse_clcc('+CLCC: 1,0,3,0,0,"+4930123456",145')
    assert entry.direction is at.CallDir.OUTGOING and entry.stat is at.CallStat.ALERTING
    assert entry.number == "+4930123456" and not entry.mpty
    cc = at.parse_qind('+QIND: "ccinfo",2,1,4,0,0,"+4915112345678",145')
    assert isinstance(cc, at.CallEntry) and cc.stat is at.CallStat.INCOMING and cc.idx == 2
    assert at.parse_qind('+QIND: "csq",20,99') == ("csq", ["20", "99"])
    with pytest.raises(ValueError, match="unknown call direction 7 or state 0"):
        at.parse_clcc("+CLCC: 1,7,0,0,0")


def test_huawei_call_urcs() -> None:
    assert at.parse_cend("^CEND:1,12,104,16") == at.CallEnd(1, 12, 104, 16)
    assert at.parse_cend("^CEND:1,0,104").cause is None
    assert at.parse_huawei_call("^CONN:1,0") == ("^CONN", 1)
    with pytest.raises(ValueError, match="\\^CEND needs at least 3 fields"):
        at.parse_cend("^CEND:1")


def test_simcom_voice_call() -> None:
    assert at.parse_voice_call("VOICE CALL: BEGIN").begin
    assert at.parse_voice_call("VOICE CALL: END: 000042").duration_s == 42
    assert at.parse_voice_call("VOICE CALL: END: 010203").duration_s == 3723
    with pytest.raises(ValueError, match="duration must be HHMMSS"):
        at.parse_voice_call("VOICE CALL: END: 42")


def test_cclk_network_time() -> None:
    when = at.parse_cclk('+CCLK: "26/11/25,09:59:44+04"')
    assert when == dt.datetime(2026, 11, 25, 8, 59, 44, tzinfo=dt.UTC)
    assert when.utcoffset() == dt.timedelta(hours=1)
    assert at.parse_cclk('+CCLK: "26/01/02,03:04:05-20"').utcoffset() == dt.timedelta(hours=-5)
    with pytest.raises(ValueError, match="must be yy/MM/dd,hh:mm:ss"):
        at.parse_cclk('+CCLK: "yesterday"')
    with pytest.raises(ValueError, match="is not a valid date"):
        at.parse_cclk('+CCLK: "26/13/01,00:00:00+00"')


def test_sms_parsers() -> None:
    assert at.parse_cmti('+CMTI: "SM",3') == at.SmsIndication("SM", 3)
    sms = at.parse_cmt('+CMT: "+4915112345678","","26/11/25,10:02:11+04"', "Power back")
    assert sms.sender == "+4915112345678" and sms.text == "Power back" and sms.time is not None
    read = at.parse_cmgr(('+CMGR: "REC UNREAD","+4915112345678","","26/11/25,10:02:11+04"', "line 1", "line 2"))
    assert read.text == "line 1\nline 2"


def test_v253_caller_id() -> None:
    cid = at.V253CallerId()
    for line in ("DATE = 1125", "TIME = 0959", "NMBR = 5551234", "NAME = JOHN DOE"):
        cid = at.merge_v253_cid(cid, line)
    assert cid == at.V253CallerId("5551234", "JOHN DOE", "1125", "0959")
    assert at.merge_v253_cid(cid, "NMBR = P").number is None
    with pytest.raises(ValueError, match="not a caller ID line"):
        at.merge_v253_cid(cid, "RING")


def test_quote_refuses_line_breakers() -> None:
    assert at.quote("1234") == '"1234"'
    with pytest.raises(ValueError, match="may not contain quotes"):
        at.quote('12"34')
