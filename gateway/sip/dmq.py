"""The HA pair's state in Kamailio's config: DMQ between this box and ha.peer (registrations, bans).

Kamailio's own replication, not ours: dmq carries KDMQ requests between the two boxes, dmq_usrloc
copies every binding change (and asks the peer for all of them at start), htable copies the failed
login counters and bans. Each fragment is empty when ha is off, so a single box's config is unchanged.

KDMQ is trusted input (a binding decides where calls go, a ban who may talk), so it is accepted only
from ha.peer's address on the DMQ socket; over TCP, so a forged source address needs more than one
spoofed datagram. Everything else arriving there, and any KDMQ elsewhere, is dropped (route[HA_DMQ]).
"""

from __future__ import annotations

import ipaddress

from gateway.config import Config
from gateway.errors import SipError
from gateway.ha.render import own_lan_ip

# The failed-login counters and the bans (route[AUTH_FAILED]): a guess at either box counts for both.
REPLICATED_TABLES = ("authfail", "authfail_ext", "ban", "banlevel")

# Loaded before htable (which registers with dmq as it starts) and after tm, sl and usrloc.
_MODULES = """
loadmodule "dmq.so"
loadmodule "dmq_usrloc.so"
# ----- HA pair: replication with ha.peer over DMQ (gateway/sip/dmq.py) -----
modparam("dmq", "server_address", "{server}")
modparam("dmq", "notification_address", "{notify}")
modparam("dmq", "num_workers", 1)
# Registrations: every change is sent to the peer as it happens; a box that starts asks for all of them.
modparam("dmq_usrloc", "enable", 1)
modparam("dmq_usrloc", "sync", 1)
modparam("dmq_usrloc", "batch_msg_contacts", 50)
# The peer's sockets are not ours: the box that calls a phone sends from its own (the shared address
# when it has one), so the binding's socket stays behind.
modparam("dmq_usrloc", "replicate_socket_info", 0)"""

# After the tables (dmqreplicate=1): htable must be loaded first, and dmq before htable (its peer list).
_HTABLE = """
# Failed logins and bans go to the peer too, and a box that starts asks for all of them.
modparam("htable", "enable_dmq", 1)
modparam("htable", "dmq_init_sync", 1)"""

_ROUTE = """

# ----- HA pair (gateway/sip/dmq.py) -----
# KDMQ carries bindings and bans: only ha.peer may send it, over TCP, to the DMQ socket. Anything else
# on that socket, and KDMQ anywhere else, is dropped unanswered before any other processing (a KDMQ
# must not count as a flood either: a full sync at start is a burst). Replies are tm's, not routed here.
route[HA_DMQ] {{
	if ($Ri == "{own}" && $Rp == {port}) {{
		if (is_method("KDMQ") && $proto == "tcp" && $si == "{peer}") {{
			dmq_handle_message();
			exit;
		}}
		xlog("L_WARN", "lifeline: $rm from $si on the pair's replication socket dropped\\n");
		exit;
	}}
	if (is_method("KDMQ")) {{
		xlog("L_WARN", "lifeline: KDMQ from $si outside the pair's replication socket dropped\\n");
		exit;
	}}
}}
"""


def _host(address: str) -> str:
    """An address as a SIP URI or Kamailio socket names it (IPv6 in brackets)."""
    return f"[{address}]" if ":" in address else address


def pair_fragments(config: Config) -> tuple[str, dict[str, str]]:
    """The DMQ listen line, and the template's ha_* placeholders (all empty when ha is off)."""
    ha = config.ha
    if not ha.enabled or ha.peer is None:
        return "", {"ha_modules": "", "ha_replicate": "", "ha_htable": "", "ha_gate": "", "ha_routes": ""}
    own = own_lan_ip(config)  # the same address keepalived speaks VRRP from
    if ipaddress.ip_address(own) == ipaddress.ip_address(ha.peer):
        raise SipError(f"ha.peer = {ha.peer!r}: that is this box's own address (sip.listen)")
    server = f"sip:{_host(own)}:{ha.dmq_port};transport=tcp"
    notify = f"sip:{_host(ha.peer)}:{ha.dmq_port};transport=tcp"
    return f"\nlisten=tcp:{_host(own)}:{ha.dmq_port}", {
        "ha_modules": _MODULES.format(server=server, notify=notify),
        "ha_replicate": "dmqreplicate=1;",
        "ha_htable": _HTABLE,
        "ha_gate": "\troute(HA_DMQ);\n",
        "ha_routes": _ROUTE.format(own=own, port=ha.dmq_port, peer=ha.peer),
    }
