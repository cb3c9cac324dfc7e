"""The doctor's pair line: what an installer reads about the pair, from the daemon's status and the peer's answer."""

from __future__ import annotations

from typing import Any

from gateway.config import parse
from gateway.core.probes import ProbeResult
from gateway.doctor.model import Facts, Verdict
from gateway.ha.doctor import ha_checks, peer_target

CONFIG = parse(
    {
        "sip": {"listen": "192.0.2.1"},
        "ha": {
            "enabled": True,
            "peer": "192.0.2.2",
            "virtual_ip": "192.0.2.10/24",
            "key_file": "/etc/lifeline/pair.key",
        },
    }
)


def facts(ha: dict[str, Any] | None, peer_ok: bool | None = True) -> Facts:
    status = None if ha is None else {"ha": ha}
    peer = None if peer_ok is None else ProbeResult(peer_ok, 1.0 if peer_ok else None, "" if peer_ok else "timeout")
    return Facts(config=CONFIG, config_path=None, status=status, peer_answer=peer)


def running(role: str) -> dict[str, Any]:
    return {"role": role, "keepalived": {"running": True, "restarts": 0}}


def test_a_single_box_has_no_pair_line() -> None:
    assert ha_checks(facts(running("active")), parse({})) == []


def test_a_well_pair_passes_and_names_the_role_and_the_peer() -> None:
    (check,) = ha_checks(facts(running("standby")), CONFIG)
    assert check.verdict is Verdict.PASS
    assert "this box is standby" in check.detail and "peer 192.0.2.2's Kamailio answers" in check.detail


def test_keepalived_not_running_or_a_failed_check_fails_with_a_fix() -> None:
    (dead,) = ha_checks(facts({"role": "fault", "keepalived": {"running": False, "restarts": 3}}), CONFIG)
    assert dead.verdict is Verdict.FAIL and "keepalived is not running (restarts 3)" in dead.detail
    assert dead.fix is not None and "CAP_NET_ADMIN" in dead.fix
    (fault,) = ha_checks(facts(running("fault")), CONFIG)
    assert fault.verdict is Verdict.FAIL and fault.fix is not None and "lifeline ha check" in fault.fix


def test_a_silent_peer_warns_that_nobody_can_take_over() -> None:
    (check,) = ha_checks(facts(running("active"), peer_ok=False), CONFIG)
    assert check.verdict is Verdict.WARN and "no standby to take over" in check.detail


def test_the_peer_is_asked_on_this_boxs_port_and_transport() -> None:
    assert peer_target(CONFIG, "sip:192.0.2.1:5060;transport=udp") == "sip:192.0.2.2:5060;transport=udp"
    assert peer_target(parse({}), "sip:127.0.0.1:5060;transport=udp") is None


def test_the_peers_replicated_records_and_who_decides_are_named_and_silence_warns() -> None:
    heard = {"up": True, "heard_s": 0.4, "lag_ms": 12, "role": "active", "mode": "survival"}
    ha = running("standby") | {"peer_health": heard, "mode_agreement": {"decides": "peer", "following": "survival"}}
    (check,) = ha_checks(facts(ha), CONFIG)
    assert check.verdict is Verdict.PASS
    assert "peer up, heard 0.4 s ago, replication lag 12 ms; the peer decides the mode" in check.detail
    silent = ha | {"peer_health": heard | {"up": False, "heard_s": 9.0}}
    (check,) = ha_checks(facts(silent), CONFIG)
    assert check.verdict is Verdict.WARN and check.fix is not None and "TCP 5090" in check.fix
    assert "the same ha.key_file on both" in check.fix  # another pair key: the peer's KDMQ is dropped
