"""The HA pair's state in Kamailio's config: DMQ between this box and ha.peer (registrations, bans).

Kamailio's own replication, not ours: dmq carries KDMQ requests between the two boxes, dmq_usrloc
copies every binding change (and asks the peer for all of them at start), htable copies the failed
login counters and bans. Each fragment is empty when ha is off, so a single box's config is unchanged.

KDMQ is trusted input (a binding decides where calls go, a ban who may talk), so it is accepted only
from ha.peer's address on the DMQ socket, over TCP, and signed: each KDMQ a box sends carries
X-Lifeline-Dmq, an HMAC-SHA256 over its Request-URI user (the DMQ peer module it is for), Call-ID, CSeq
and body's SHA-256, keyed with a key derived from the pair key (dmq_key). A LAN host that takes the
peer's address (ARP spoofing, or the peer switched off) can reach the socket but cannot write a binding,
a ban or the pair's mode. Everything else arriving there, and any KDMQ elsewhere, is dropped
(route[HA_DMQ]). Not covered: a genuine KDMQ captured on the LAN and sent again later, which brings
back what it said then (a binding since removed, a ban since lifted) until the next change or resync.
No clock goes into the signature: two boxes whose clocks drift apart (no NTP in a WAN outage, a Pi
without a real-time clock) still replicate.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets

from gateway.config import Config
from gateway.errors import SipError
from gateway.ha.render import own_lan_ip
from gateway.sip import call_starts

SIGNATURE_HEADER = "X-Lifeline-Dmq"
DMQ_LABEL = b"lifeline dmq"  # what the DMQ signing key is derived for
# The failed-login counters and the bans (route[AUTH_FAILED]): a guess at either box counts for both.
REPLICATED_TABLES = ("authfail", "authfail_ext", "ban", "banlevel")

PING_INTERVAL_S = 5  # dmq's ping_interval in _MODULES
# A silence of the peer's pings longer than this (more than one missed) makes this box ask for a resync.
PEER_SILENCE_S = PING_INTERVAL_S + 3
# How long a KDMQ, a ping too, waits for the peer's answer: tm's fr_timer (kamailio.cfg.tmpl). The
# answer comes after everything queued before it at the peer's DMQ worker; a shorter wait would mark a
# busy peer inactive in a register storm, and this box would send it nothing until the next ping.
KDMQ_ANSWER_S = 30
# The peer's pings from while this box was down (all sent before the first one it hears) time out that
# long after they were sent, each marking this box inactive there until the next ping: this long after
# it first hears the peer, no such ping is left, and this box asks the peer once more for what it kept
# back meanwhile (route[HA_SETTLE]).
START_SETTLED_S = KDMQ_ANSWER_S + PING_INTERVAL_S + 2
SETTLED_LOG = "this start has settled"  # route[HA_SETTLE]'s log line, for tests and a reader of the log
# The actions that ask a peer for everything, as Kamailio 5.6's modules number them (dmq_usrloc's
# usrloc_sync.h, htable's ht_dmq.h); tests/ha/test_split_brain.py fails if they are wrong.
USRLOC_SYNC, HTABLE_SYNC = 3, 1
_RESYNC = {
    "ping": PING_INTERVAL_S,
    "gap": PEER_SILENCE_S,
    "settled": START_SETTLED_S,
    "settled_log": SETTLED_LOG,
    "usrloc_sync": USRLOC_SYNC,
    "htable_sync": HTABLE_SYNC,
}

# Loaded before htable (which registers with dmq as it starts) and after tm, sl and usrloc.
_MODULES = """
loadmodule "dmq.so"
loadmodule "dmq_usrloc.so"
# HMAC-SHA256: KDMQ's signature (route[HA_DMQ_SIGNED]) and the pair's forwarded trunk calls (gateway/sip/pair_trunk.py).
loadmodule "crypto.so"
# route[HA_SETTLE] once a second, in a process of its own (mode=1), off the core timers.
loadmodule "rtimer.so"
# ----- HA pair: replication with ha.peer over DMQ (gateway/sip/dmq.py) -----
modparam("dmq", "server_address", "{server}")
modparam("dmq", "notification_address", "{notify}")
modparam("dmq", "num_workers", 1)
# Pings every 5 s (the least; PING_INTERVAL_S), not 60: the peer's state in dmq.list_nodes (`lifeline
# status`) and its silences are known within seconds.
modparam("dmq", "ping_interval", {ping})
# Registrations: every change is sent to the peer as it happens; a box that starts asks for all of them.
modparam("dmq_usrloc", "enable", 1)
modparam("dmq_usrloc", "sync", 1)
modparam("dmq_usrloc", "batch_msg_contacts", 50)
# The peer's sockets are not ours: the box that calls a phone sends from its own (the shared address
# when it has one), so the binding's socket stays behind.
modparam("dmq_usrloc", "replicate_socket_info", 0)
# Seconds since this Kamailio started, counted by route[HA_SETTLE]: no wall clock, which a Pi without
# a real-time clock has wrong until NTP steps it.
modparam("pv", "shvset", "ha_ticks=i:0")
# The tick after which the peer's DMQ was last heard, 0 before (route[HA_PEER_HEARD]).
modparam("pv", "shvset", "ha_peer_heard=i:0")
# The tick at which route[HA_SETTLE] asks the peer for everything once more, 0 before the peer is heard;
# ha_settled is 1 once it has.
modparam("pv", "shvset", "ha_settle_at=i:0")
modparam("pv", "shvset", "ha_settled=i:0")
modparam("rtimer", "timer", "name=ha_settle;interval=1;mode=1;")
modparam("rtimer", "exec", "timer=ha_settle;route=HA_SETTLE")"""

# After the tables (dmqreplicate=1): htable must be loaded first, and dmq before htable (its peer list).
_HTABLE = """
# Failed logins and bans go to the peer too, and a box that starts asks for all of them.
modparam("htable", "enable_dmq", 1)
modparam("htable", "dmq_init_sync", 1)"""

_ROUTE = """

# ----- HA pair (gateway/sip/dmq.py) -----
#!define PAIR_DMQ_KEY "{key}"

# Every KDMQ this box sends (dmq, dmq_usrloc, htable, route[HA_PEER_HEARD]) is signed; tm runs this
# route for each request it makes itself. The body goes in as its SHA-256: a full sync's batch is
# larger than Kamailio's print buffer.
event_route[tm:local-request] {{
	if (is_method("KDMQ")) {{
		crypto_hmac_sha256("$rU:$ci:$cs:$(rb{{s.sha256}})", PAIR_DMQ_KEY, "$var(dmq_sig)");
		append_hf("{header}: $var(dmq_sig)\\r\\n");
	}}
}}
# KDMQ carries bindings and bans: only ha.peer may send it, over TCP, to the DMQ socket. Anything else
# on that socket, and KDMQ anywhere else, is dropped unanswered before any other processing (a KDMQ
# must not count as a flood either: a full sync at start is a burst). Replies are tm's, not routed here.
route[HA_DMQ] {{
	if ($Ri == "{own}" && $Rp == {port}) {{
		if (is_method("KDMQ") && $proto == "tcp" && $si == "{peer}") {{
			route(HA_DMQ_SIGNED);
			if ($rU == "notification_peer") route(HA_PEER_HEARD);
			dmq_handle_message();
			exit;
		}}
		# The peer's forwarded trunk calls and their dialogs (gateway/sip/pair_trunk.py).
		if ($proto == "tcp" && $si == "{peer}" && route(PAIR_TRUNK_GATE)) return;
		xlog("L_WARN", "lifeline: $rm from $si on the pair's replication socket dropped\\n");
		exit;
	}}
	if (is_method("KDMQ")) {{
		xlog("L_WARN", "lifeline: KDMQ from $si outside the pair's replication socket dropped\\n");
		exit;
	}}
}}

# Exits unless the KDMQ carries the pair key's signature (a host that took the peer's address, or a
# peer with another pair key: then nothing replicates, and this line says why).
route[HA_DMQ_SIGNED] {{
	if ($hdrc({header}) == 1) {{
		crypto_hmac_sha256("$rU:$ci:$cs:$(rb{{s.sha256}})", PAIR_DMQ_KEY, "$var(dmq_want)");
		if ($hdr({header}) == $var(dmq_want)) return;
	}}
	xlog("L_WARN", "lifeline: KDMQ from {peer} unsigned by the pair key dropped (is ha.key_file the same on both?)\\n");
	exit;
}}

# DMQ sends each change once and keeps no backlog: a binding or table item changed while the boxes
# could not reach each other (a split brain, a cable, a switch's restart) is never sent again, and
# dmq_usrloc and htable ask for everything only when Kamailio starts. The peer pings every
# ping_interval; a ping after a longer silence means such a gap: ask the peer for all of it again, as
# a box that starts does (DMQ_SYNC of dmq_usrloc, HT_DMQ_SYNC of htable in Kamailio 5.6). The peer
# does the same on hearing this box's pings, so each box learns what the other took meanwhile.
route[HA_PEER_HEARD] {{
	# Not on the first ping after this Kamailio started: the sync at start (dmq_usrloc sync, htable
	# dmq_init_sync) has asked for everything already.
	if ($shv(ha_peer_heard) > 0 && $shv(ha_ticks) + 1 - $shv(ha_peer_heard) > {gap}) {{
		xlog("L_NOTICE", "lifeline: DMQ peer {peer} heard after a silence: asking it for everything again\\n");
		route(HA_RESYNC);
	}}
	$shv(ha_peer_heard) = $shv(ha_ticks) + 1;
	if ($shv(ha_settle_at) == 0) $shv(ha_settle_at) = $shv(ha_ticks) + {settled};
}}

# Run by rtimer once a second: counts the ticks, and once after a start asks the peer for everything
# again. The peer's pings from while this box was down, all sent before the first one this box hears,
# time out only KDMQ_ANSWER_S after they were sent, and each marks this box inactive at the peer until
# the next ping: a binding or ban the peer took then was sent nowhere (at any time up to ~35 s after
# this box first hears it). START_SETTLED_S after that first ping, none is left.
route[HA_SETTLE] {{
	$shv(ha_ticks) = $shv(ha_ticks) + 1;
	if ($shv(ha_settled) == 1 || $shv(ha_settle_at) == 0 || $shv(ha_ticks) < $shv(ha_settle_at)) return;
	$shv(ha_settled) = 1;
	xlog("L_NOTICE", "lifeline: {settled_log}: asking DMQ peer {peer} for everything again\\n");
	route(HA_RESYNC);
}}

# Ask the peer for all its bindings and replicated table items, as a box that starts does.
route[HA_RESYNC] {{
	dmq_send_message("usrloc", "{notify}", '{{"action":{usrloc_sync}}}', "application/json");
	dmq_send_message("htable", "{notify}", '{{"action":{htable_sync}}}', "application/json");
}}
"""


def _host(address: str) -> str:
    """An address as a SIP URI or Kamailio socket names it (IPv6 in brackets)."""
    return f"[{address}]" if ":" in address else address


def dmq_key(pair_key: bytes) -> str:
    """The key both boxes sign KDMQ with, as hex: derived, so Kamailio never sees the pair key."""
    return hmac.new(pair_key, DMQ_LABEL, hashlib.sha256).hexdigest()


def pair_fragments(config: Config, key: str) -> tuple[str, dict[str, str]]:
    """The DMQ listen line, and the template's ha_* placeholders (all empty when ha is off).

    key: dmq_key()'s, or "" for a throw-away one (nothing the peer sends is taken then).
    """
    ha = config.ha
    if not ha.enabled or ha.peer is None:
        empty = ("ha_modules", "ha_replicate", "ha_htable", "ha_gate", "ha_routes", "ha_cdr_answer")
        return "", dict.fromkeys(empty, "")
    own = own_lan_ip(config)  # the same address keepalived speaks VRRP from
    if ipaddress.ip_address(own) == ipaddress.ip_address(ha.peer):
        raise SipError(f"ha.peer = {ha.peer!r}: that is this box's own address (sip.listen)")
    server = f"sip:{_host(own)}:{ha.dmq_port};transport=tcp"
    notify = f"sip:{_host(ha.peer)}:{ha.dmq_port};transport=tcp"
    return f"\nlisten=tcp:{_host(own)}:{ha.dmq_port}", {
        "ha_modules": _MODULES.format(server=server, notify=notify, ping=PING_INTERVAL_S),
        "ha_replicate": "dmqreplicate=1;",
        "ha_htable": call_starts.TABLE_FRAGMENT + _HTABLE,
        "ha_gate": "\troute(HA_DMQ);\n",
        "ha_routes": _ROUTE.format(
            own=own,
            port=ha.dmq_port,
            peer=ha.peer,
            notify=notify,
            key=key or secrets.token_hex(32),
            header=SIGNATURE_HEADER,
            **_RESYNC,
        )
        + call_starts.ROUTE_FRAGMENT,
        "ha_cdr_answer": call_starts.ROUTE_CALL,
    }
