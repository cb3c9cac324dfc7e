"""The doctor's pair line ([ha] on): keepalived runs, this box's role, and whether the peer's Kamailio answers."""

from __future__ import annotations

from typing import Any

from gateway.config import Config
from gateway.doctor.model import Check, Facts, Verdict

NAME = "pair"
KEEPALIVED_FIX = (
    "`journalctl -u lifeline | grep keepalived` says why; keepalived needs its package and the service "
    "CAP_NET_ADMIN and CAP_NET_RAW: sudo ./install.sh --pair gives them (on both boxes)"
)


def peer_target(config: Config | None, own_target: str | None) -> str | None:
    """The peer's SIP URI on the port and transport this box uses (the pair's two configs match), or None."""
    if config is None or not config.ha.enabled or config.ha.peer is None or own_target is None:
        return None
    peer = config.ha.peer
    _, _, rest = own_target.partition(":")
    port_and_params = rest.rsplit(":", 1)[1]
    return f"sip:{f'[{peer}]' if ':' in peer else peer}:{port_and_params}"


def ha_checks(facts: Facts, config: Config) -> list[Check]:
    """Nothing for a single box; else the pair's state as this box sees it."""
    ha = config.ha
    if not ha.enabled:
        return []
    status: dict[str, Any] = (facts.status or {}).get("ha") or {}
    if facts.status is None:
        return [Check(NAME, Verdict.SKIP, "the daemon runs keepalived: it is not running")]
    keepalived = status.get("keepalived") or {}
    if not keepalived.get("running"):
        detail = f"keepalived is not running (restarts {keepalived.get('restarts', 0)}); the peer holds {ha.virtual_ip}"
        return [Check(NAME, Verdict.FAIL, detail, KEEPALIVED_FIX)]
    role = status.get("role")
    peer = facts.peer_answer
    heard = "not asked" if peer is None else ("answers" if peer.ok else f"does not answer ({peer.detail})")
    detail = f"this box is {role}, shared address {ha.virtual_ip}; peer {ha.peer}'s Kamailio {heard}"
    replicated = status.get("peer_health")
    if replicated is not None:
        detail += f"; {_replication(replicated, status.get('mode_agreement') or {})}"
    if role == "fault":
        fix = "`lifeline ha check` says what is wrong here (Kamailio or the store); the peer holds the address"
        return [Check(NAME, Verdict.FAIL, detail, fix)]
    if peer is not None and not peer.ok:
        fix = f"check the peer box {ha.peer}: is it on, on this LAN, its daemon running? (`lifeline doctor` there)"
        return [Check(NAME, Verdict.WARN, detail + ": no standby to take over", fix)]
    if replicated is not None and not replicated.get("up"):
        fix = (
            f"the peer's records stopped coming: its daemon running? TCP {ha.dmq_port} open between the boxes? "
            "the same ha.key_file on both? (a box drops what another pair key signed and logs it: "
            "`journalctl -u lifeline | grep 'unsigned by the pair key'`)"
        )
        return [Check(NAME, Verdict.WARN, detail, fix)]
    return [Check(NAME, Verdict.PASS, detail)]


def _replication(peer: dict[str, Any], agreement: dict[str, Any]) -> str:
    """The peer's records as replicated here, and who decides the mode."""
    decides = "the peer decides the mode" if agreement.get("following") else "this box decides the mode"
    if peer.get("heard_s") is None:
        return f"nothing replicated from the peer yet; {decides}"
    state = "up" if peer.get("up") else "silent"
    return f"peer {state}, heard {peer['heard_s']:.1f} s ago, replication lag {peer['lag_ms']} ms; {decides}"
