"""cloud.sbc as an SRV name: which URIs are looked up (RFC 3263), the order of the targets, and what is shown."""

from __future__ import annotations

import dns.rdata
import dns.rdtypes.IN.SRV
import pytest

from gateway.config import parse
from gateway.core.probes import ProbeResult, SbcSetProbe, SipOptionsProbe
from gateway.doctor import Verdict
from gateway.doctor.cloud_srv import srv_check
from gateway.doctor.model import Facts
from gateway.errors import ConfigError
from gateway.sip.cloud_list import with_sbcs
from gateway.sip.srv import SbcList, ordered, refresh_after


@pytest.mark.parametrize(
    ("sbc", "name"),
    [
        ("sip:cloud.example", "_sip._udp.cloud.example"),
        ("sip:Cloud.Example.", "_sip._udp.cloud.example"),
        ("sip:cloud.example;transport=tcp", "_sip._tcp.cloud.example"),
        ("sip:cloud.example;transport=tls", "_sips._tcp.cloud.example"),
        ("sips:cloud.example", "_sips._tcp.cloud.example"),
        ("sip:cloud.example:5060", None),  # an explicit port: never an SRV lookup (RFC 3263 4.2)
        ("sip:192.0.2.7", None),
        ("sip:[2001:db8::7]", None),
        (["sip:a.example", "sip:b.example"], None),  # a written list is used as written
        (None, None),
    ],
)
def test_which_cloud_sbc_is_an_srv_name(sbc: object, name: str | None) -> None:
    cloud = {"sbc": sbc} if sbc is not None else {}
    assert parse({"cloud": cloud}).cloud.srv_name == name


def test_the_refresh_bounds_must_be_in_order() -> None:
    with pytest.raises(ConfigError, match="srv_refresh_max_s"):
        parse({"cloud": {"sbc": "sip:cloud.example", "srv_refresh_min_s": 60, "srv_refresh_max_s": 10}})


def srv(text: str) -> dns.rdtypes.IN.SRV.SRV:
    record = dns.rdata.from_text("IN", "SRV", text)
    assert isinstance(record, dns.rdtypes.IN.SRV.SRV)
    return record


def test_targets_go_by_priority_then_heavier_weight_without_dot_or_repeats() -> None:
    records = [
        srv("20 100 5060 us.cloud.example."),
        srv("10 10 5070 eu-b.cloud.example."),
        srv("10 90 5060 EU-A.cloud.example."),
        srv("30 0 0 ."),
        srv("10 90 5060 eu-a.cloud.example."),
    ]
    assert ordered(records) == [("eu-a.cloud.example", 5060), ("eu-b.cloud.example", 5070), ("us.cloud.example", 5060)]
    assert ordered([srv("0 0 0 .")]) == []


def test_the_ttl_is_held_between_the_configured_bounds() -> None:
    assert refresh_after(300, 30, 3600) == 300
    assert refresh_after(0, 30, 3600) == 30  # dnsmasq's default TTL for its own records
    assert refresh_after(86400, 30, 3600) == 3600
    assert refresh_after(None, 30, 3600) == 3600


def test_an_srv_answer_makes_the_same_config_as_the_list_written_in_the_file() -> None:
    found = with_sbcs(parse({"cloud": {"sbc": "sip:cloud.example;transport=tcp"}}), ("sip:a:5060;transport=tcp",))
    written = parse({"cloud": {"sbc": ["sip:a:5060;transport=tcp"]}})
    assert found.cloud == written.cloud
    two = with_sbcs(found, ("sip:a:5060;transport=tcp", "sip:b:5080;transport=tcp"))
    assert two.cloud.sbcs == ("sip:a:5060;transport=tcp", "sip:b:5080;transport=tcp")
    assert two.cloud.srv_name is None  # the targets are never looked up as SRV names themselves


def test_a_new_list_keeps_what_the_probes_knew_of_an_sbc_in_both() -> None:
    probes = SbcSetProbe([SipOptionsProbe(uri, 1.0) for uri in ("sip:a:5060", "sip:b:5060")])
    probes.last, probes.misses = [ProbeResult(True, 5.0, "200"), ProbeResult(False, None, "timeout")], [0, 3]
    probes.replace([SipOptionsProbe(uri, 1.0) for uri in ("sip:b:5060", "sip:c:5060")], "SRV _sip._udp.x")
    assert probes.up() == [False, True]
    shown = probes.status()
    assert [(s["uri"], s["state"], s["source"]) for s in shown] == [
        ("sip:b:5060", "down", "SRV _sip._udp.x"),
        ("sip:c:5060", "unknown", "SRV _sip._udp.x"),
    ]


def test_the_doctor_has_a_line_for_the_srv_lookup() -> None:
    config = parse({"cloud": {"sbc": "sip:cloud.example"}})
    name = "_sip._udp.cloud.example"

    def check(srv: SbcList | str | None) -> tuple[Verdict, str, str | None]:
        [line] = srv_check(Facts(config=config, config_path=None, srv=srv), config)
        return line.verdict, line.detail, line.fix

    good = check(SbcList(("sip:a:5060", "sip:b:5060"), f"SRV {name}", 300))
    assert good == (Verdict.PASS, f"SRV {name}: sip:a:5060, sip:b:5060", None)
    verdict, detail, fix = check(
        SbcList(("sip:cloud.example",), f"address of cloud.example (no SRV records for {name})", 300)
    )
    assert verdict is Verdict.WARN and "own address" in detail and fix and "sip:cloud.example:5060" in fix
    verdict, detail, fix = check(f"SRV {name}: no answer within 3 s")
    assert verdict is Verdict.FAIL and "no answer" in detail and fix and f"dig SRV {name}" in fix
    written = parse({"cloud": {"sbc": "sip:cloud.example:5060"}})
    assert srv_check(Facts(config=written, config_path=None), written) == []
