"""/metrics for the SIP side: Kamailio, registrations, the edge's failed logins and bans."""

from __future__ import annotations

from typing import Any

from gateway.sip.supervisor import KamailioState
from gateway.web.metrics_families import Families, dict_of, list_of


def add_sip(f: Families, sip: dict[str, Any], registrations: Any) -> None:
    """Kamailio, the location table and the SIP edge's failed logins and bans."""
    kamailio = sip.get("kamailio")
    if isinstance(kamailio, dict):
        states = [s.value for s in KamailioState]
        f.state_set("lifeline_kamailio_state", "The Kamailio child's state.", "state", states, kamailio.get("state"))
        f.counter("lifeline_kamailio_restarts", "Kamailio restarts after it exited.", [((), kamailio.get("restarts"))])
    regs = dict_of(registrations)
    f.value("lifeline_registered_users", "Users with a registration in Lifeline's location table.", regs.get("users"))
    f.value("lifeline_registered_contacts", "Contacts in Lifeline's location table.", regs.get("contacts"))
    edge = sip.get("edge")
    if isinstance(edge, dict):
        f.value(
            "lifeline_sip_banned_addresses",
            "Source addresses banned now for failed logins.",
            len(list_of(edge.get("bans"))),
        )
        failed = sum(v for v in dict_of(edge.get("failed_logins")).values() if isinstance(v, int))
        f.value("lifeline_sip_failed_logins", "Failed logins within the failure window, all extensions.", failed)
        f.value(
            "lifeline_sip_failing_sources",
            "Source addresses with failed logins within the failure window.",
            len(dict_of(edge.get("failing_sources"))),
        )
