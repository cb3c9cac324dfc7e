"""The trunk across an HA pair: a call this box's modems cannot take leaves through the peer's (Kamailio config).

A trunk call goes to this box's own trunk agent only (the peer's agent binding, replicated by dmq_usrloc,
is the peer's to use). With no agent here, or when it refuses for want of a line (486/503, or no answer),
the call goes to the peer's Kamailio over TCP on the pair's socket (ha.dmq_port), with the caller as
authenticated here in X-Lifeline-Pair: "<extension>;ts=<epoch s>;sig=<HMAC-SHA256>" over the time, the
caller, the number and the Call-ID, keyed with a key derived from the pair key. The peer takes such an
INVITE only from ha.peer over TCP on that socket, signed, at most MAX_SKEW_S old and once per Call-ID;
then it stamps the caller for its own agent, whose dial plan, limits and minutes apply as to its own
phones. It never sends such a call on (no loops). Without [ha] nothing of this is rendered.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from gateway.config import Config
from gateway.ha.render import own_lan_ip

HEADER = "X-Lifeline-Pair"
TRUNK_LABEL = b"lifeline pair trunk"  # what the pair-trunk key is derived for
MAX_SKEW_S = 30  # a forwarded call older (or newer) than this by its signed time is refused
# Answers from this box's agent (or from tm, for an agent that is gone) that send the call to the peer.
FAILOVER_CODES = "408|486|5[0-9][0-9]"

# A single box: the template renders exactly as before the pair's trunk (tests/sip/test_render_pair_trunk.py).
SINGLE = {
    "pair_trunk_first": "",
    "trunk_lookup": 'lookup("location", "sip:$shv(trunk)@$rd")',
    "pair_trunk_failed": "",
    "pair_dlg_next": "",
}

_HTABLE = """
# Forwarded calls from the peer already taken (Call-ID): a replayed one is refused (gateway/sip/pair_trunk.py).
modparam("htable", "htable", "pair_seen=>size=8;autoexpire={expire};")"""

_ROUTES = """

# ----- The trunk across the pair (gateway/sip/pair_trunk.py) -----
#!define PAIR_TRUNK_KEY "{key}"
#!define PAIR_PEER "{peer}"
#!define PAIR_PEER_URI "sip:{peer}:{port};transport=tcp"
#!define PAIR_SOCK "tcp:{own_host}:{port}"
#!define PAIR_PHONE_SOCK "{phone_sock}"

# This box's own trunk agent as the Request-URI; else the call goes to the peer (exits once sent there).
# tm-safe: route[TRUNK] runs from failure routes too.
route[PAIR_TRUNK_AGENT] {{
	$avp(pair_dialled) = $var(dialled);
	$var(agent) = "";
	# Both agents register as the same extension, often with a loopback contact: only a binding that came
	# in on a socket of this box is this box's (dmq_usrloc copies the peer's without one: gateway/sip/dmq.py).
	if (reg_fetch_contacts("location", "sip:$shv(trunk)@$rd", "agent")) {{
		$var(i) = 0;
		while ($var(i) < $ulc(agent=>count)) {{
			if ($(ulc(agent=>socket)[$var(i)]{{s.len}}) > 0) {{
				$var(agent) = $(ulc(agent=>addr)[$var(i)]);
				$var(i) = $ulc(agent=>count);
			}}
			$var(i) = $var(i) + 1;
		}}
		reg_free_contacts("agent");
	}}
	if ($var(agent) != "") {{
		$ru = $var(agent);
		$du = $null;
		return 1;
	}}
	route(PAIR_TRUNK_OUT);
	return -1;
}}

# This box has no line for the call: the peer's trunk, with the caller authenticated here. Exits once sent;
# returns when the call is not one to send (came from the peer, sent there already, no caller, no number).
route[PAIR_TRUNK_OUT] {{
	if (!is_method("INVITE") || has_totag() || $avp(pair_in) == 1 || $avp(pair_out) == 1) return;
	if (!($avp(ext_number) =~ "^[A-Za-z0-9_.+-]{{1,64}}$")) return;
	$var(n) = $rU;
	if ($avp(pair_dialled) != $null) $var(n) = $avp(pair_dialled);
	if (!($var(n) =~ "^[+]?[0-9*#]{{2,24}}$")) return;
	$avp(pair_out) = 1;
	$var(ts) = $Ts;
	crypto_hmac_sha256("$var(ts):$avp(ext_number):$var(n):$ci", PAIR_TRUNK_KEY, "$var(sig)");
	remove_hf("{header}");
	append_hf("{header}: $avp(ext_number);ts=$var(ts);sig=$var(sig)\\r\\n");
	$ru = "sip:" + $var(n) + "@" + PAIR_PEER;
	$du = PAIR_PEER_URI;
	$fs = PAIR_SOCK;
	$avp(cdr_to_trunk) = 1;
	t_reset_fr();
	t_on_failure("CDR_FAILURE");
	xlog("L_NOTICE", "trunk call $ci: no line on this box; to the peer's trunk\\n");
	if (t_relay()) exit;
	xlog("L_WARN", "trunk call $ci: the peer box could not be reached\\n");
}}

# What the peer sends on the pair's socket (already known to be from ha.peer over TCP): its forwarded
# INVITE is checked and taken here (exits); requests of dialogs (CANCEL, ACK, in-dialog) go on to the
# usual checks (returns 1); anything else is dropped (returns -1).
route[PAIR_TRUNK_GATE] {{
	if (is_method("CANCEL|ACK")) return 1;
	if (has_totag() && is_method("BYE|INVITE|UPDATE|INFO|PRACK|REFER|NOTIFY|OPTIONS")) return 1;
	if (!is_method("INVITE")) return -1;
	route(PAIR_TRUNK_IN);
	exit;
}}

route[PAIR_TRUNK_IN] {{
	if (!mf_process_maxfwd_header("10")) {{
		sl_send_reply("483", "Too Many Hops");
		exit;
	}}
	# Exactly one header of exactly this form; nothing of it is believed before its signature is checked.
	if ($hdrc({header}) != 1) {{
		$var(why) = "no single pair header";
		route(PAIR_TRUNK_REFUSE);
	}}
	$var(p) = $hdr({header});
	if (!($var(p) =~ "^[A-Za-z0-9_.+-]{{1,64}};ts=[0-9]{{1,12}};sig=[A-Za-z0-9_=-]{{43,44}}$")
			|| !($rU =~ "^[+]?[0-9*#]{{2,24}}$")) {{
		$var(why) = "malformed";
		route(PAIR_TRUNK_REFUSE);
	}}
	$var(ext) = $(var(p){{s.select,0,;}});
	$var(ts) = $(var(p){{param.value,ts}});
	$var(sig) = $(var(p){{param.value,sig}});
	crypto_hmac_sha256("$var(ts):$var(ext):$rU:$ci", PAIR_TRUNK_KEY, "$var(want)");
	if ($var(sig) != $var(want)) {{
		$var(why) = "bad signature";
		route(PAIR_TRUNK_REFUSE);
	}}
	$var(age) = $Ts - $(var(ts){{s.int}});
	if ($var(age) > {skew} || $var(age) < -{skew}) {{
		$var(why) = "stale";
		route(PAIR_TRUNK_REFUSE);
	}}
	if ($sht(pair_seen=>$ci) != $null) {{
		$var(why) = "replayed";
		route(PAIR_TRUNK_REFUSE);
	}}
	$sht(pair_seen=>$ci) = 1;
	# The sending box's own stamp for its agent (a call its agent refused) is no use here: ours replaces it.
	remove_hf("{header}");
	remove_hf("X-Lifeline-Caller");
	$avp(pair_in) = 1;
	$avp(ext_number) = $var(ext);
	# The agent's own transfers to outside numbers are refused on either box (route[TRUNK]).
	if ($var(ext) == $shv(trunk) && !($rU =~ EMERGENCY)) {{
		$var(why) = "a transfer by the trunk agent";
		route(PAIR_TRUNK_REFUSE);
	}}
	if ($shv(trunk) == $null || $shv(trunk) == "") {{
		sl_send_reply("503", "Trunk Not Available");
		exit;
	}}
	$var(dialled) = $rU;
	if (!route(PAIR_TRUNK_AGENT)) {{
		sl_send_reply("503", "Trunk Not Available");
		exit;
	}}
	$rU = $var(dialled);
	route(CALLER_STAMP);
	# Both Record-Route entries name this box's own sockets, not the shared address: the agent's requests
	# come back here and go on to the peer over the pair's socket. Signed as route[DLG_SIGN] signs.
	$var(dlg) = ROUTE_KEY + ":" + $ci + ":" + $ft;
	$var(lls) = $(var(dlg){{s.sha256}}{{s.substr,0,32}});
	record_route_preset("{own_host}:{phone_port};lls=$var(lls);r2=on",
		"{own_host}:{port};transport=tcp;lls=$var(lls);r2=on");
	$fs = PAIR_PHONE_SOCK;
	t_on_failure("PAIR_TRUNK_IN_FAILED");
	xlog("L_INFO", "trunk call $ci from the peer box for $var(ext) to **$(rU{{s.substr,-2,0}})\\n");
	if (!t_relay()) sl_reply_error();
	exit;
}}

# The agent's 503 is the trunk's own answer (no line): passed on as such, not as tm's 500.
failure_route[PAIR_TRUNK_IN_FAILED] {{
	if ($T_reply_code == 503) t_reply("503", "$T_reply_reason");
}}

route[PAIR_TRUNK_REFUSE] {{
	xlog("L_WARN", "lifeline: forwarded trunk call $ci from the peer refused: $var(why)\\n");
	sl_send_reply("403", "Forbidden");
	exit;
}}
"""


def trunk_key(pair_key: bytes) -> str:
    """The key both boxes sign forwarded trunk calls with, as hex: derived, so Kamailio never sees the pair key."""
    return hmac.new(pair_key, TRUNK_LABEL, hashlib.sha256).hexdigest()


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def with_trunk(pair: dict[str, str], config: Config, transport: str, port: int, key: str) -> dict[str, str]:
    """The template's ha_* placeholders (gateway.sip.dmq) with the trunk's parts added, and its own placeholders.

    transport and port: the phones' first socket, the one the trunk agent registers to; key: trunk_key()'s,
    or "" for a throw-away one (nothing the peer signs is taken then).
    """
    parts = trunk_fragments(config, f"{transport}:{config.sip.listen}:{port}", port, key or secrets.token_hex(32))
    merged = dict(pair)
    for name in ("htable", "routes"):
        merged[f"ha_{name}"] = merged.get(f"ha_{name}", "") + parts.pop(name)
    return merged | parts


def trunk_fragments(config: Config, phone_sock: str, phone_port: int, key: str) -> dict[str, str]:
    """The template's pair_trunk placeholders, and the modules, tables and routes to add to the ha_* ones."""
    ha = config.ha
    if not ha.enabled or ha.peer is None:
        return dict(SINGLE) | {"htable": "", "routes": ""}
    own = own_lan_ip(config)
    routes = _ROUTES.format(
        key=key,
        own_host=_host(own),
        peer=_host(ha.peer),
        port=ha.dmq_port,
        phone_sock=phone_sock,
        phone_port=phone_port,
        header=HEADER,
        skew=MAX_SKEW_S,
    )
    return {
        # No trunk agent on this box at all: the peer's trunk, if it takes the call.
        "pair_trunk_first": (
            '\n\tif (is_method("INVITE") && ($shv(trunk) == $null || $shv(trunk) == "")) route(PAIR_TRUNK_OUT);'
        ),
        "trunk_lookup": "route(PAIR_TRUNK_AGENT)",
        "pair_trunk_failed": (
            f'\n\tif ($avp(cdr_to_trunk) == 1 && !t_is_canceled() && t_check_status("{FAILOVER_CODES}"))'
            " route(PAIR_TRUNK_OUT);"
        ),
        # The peer's pair socket is where a forwarded trunk call's in-dialog requests go on to.
        "pair_dlg_next": (f'\n\tif ($var(nh_host) == "{_host(ha.peer)}" && $var(nh_port) == {ha.dmq_port}) return;'),
        "htable": _HTABLE.format(expire=4 * MAX_SKEW_S),
        "routes": routes,
    }
