"""Per-address TCP connection limits for the LAN-facing listeners, as an nftables ruleset.

Kamailio 5.6 counts TCP connections only in total (sip.tcp_max_connections): one host opening a
couple of thousand half-open connections fills the table and locks every phone out. The kernel
does the per-address counting instead: a new TCP connection to a listed port from an address that
already has sip.tcp_per_source tracked connections is answered with a reset.

The ruleset lives in a table of Lifeline's own, `table inet lifeline`, replaced whole in one
`nft -f` transaction (created if missing, deleted, made anew): other tables are never touched.
Pure text here; `lifeline firewall` (gateway/cli/firewall_cmd.py) prints it or loads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.config import Config

TABLE = "inet lifeline"
LOG_PREFIX = "lifeline: tcp limit "  # the kernel log line then names SRC=<address>: for fail2ban
SET_SIZE = 65535  # source addresses tracked at once; an address beyond it is not limited
LOG_RATE = "10/minute"  # a flood is logged a few lines a minute, not a line a packet


@dataclass(frozen=True)
class Listener:
    """One TCP port the LAN reaches; port 0 is a free port picked at each start (not known in advance)."""

    name: str
    port: int


def listeners(
    config: Config, *, sip_port: int | None = None, tls_port: int | None = None, api_port: int | None = None
) -> tuple[Listener, ...]:
    """The TCP listeners of this config: Kamailio's TCP and TLS ports, and the network API's.

    The keyword arguments are the ports actually bound where the config says 0 (free port, dev/test).
    A new TCP listener belongs here too.
    """
    sip = config.sip
    found: list[Listener] = []
    if "tcp" in sip.transports:
        found.append(Listener("sip-tcp", sip_port if sip_port is not None else sip.port))
    if "tls" in sip.transports:
        found.append(Listener("sip-tls", tls_port if tls_port is not None else sip.tls_port))
    if config.api.enabled:
        found.append(Listener("api", api_port if api_port is not None else config.api.port))
    if config.ha.enabled:
        # The pair's DMQ socket (gateway/sip/dmq.py) takes TCP from anyone before Kamailio drops a stranger.
        found.append(Listener("ha-dmq", config.ha.dmq_port))
    return tuple(found)


def unknown(found: Sequence[Listener]) -> tuple[Listener, ...]:
    """The listeners whose port is 0: the ruleset cannot name them, so they are not limited."""
    return tuple(listener for listener in found if listener.port == 0)


def ruleset(config: Config, found: Sequence[Listener]) -> str:
    """The `nft -f` input: table inet lifeline with the per-address limit on the listeners' ports."""
    limit = config.sip.tcp_per_source
    ports = sorted({listener.port for listener in found if listener.port})
    named = ", ".join(f"{listener.name} {listener.port}" for listener in found if listener.port) or "none"
    lines = [
        "# Lifeline: per-address TCP connection limits (gateway/sip/firewall.py; `lifeline firewall`).",
        f"# At most {limit} tracked TCP connections (sip.tcp_per_source) from one address to: {named}.",
    ]
    lines += [f"# Not limited: {listener.name} has port 0 (a free port at each start)." for listener in unknown(found)]
    lines += [
        "# One transaction: the table is created if missing, deleted and made anew; no other table is touched.",
        f"table {TABLE}",
        f"delete table {TABLE}",
        "",
        f"table {TABLE} {{",
        "\t# Per source address: the count of its tracked connections (elements go when it reaches 0).",
    ]
    for name, key_type in (("tcp4", "ipv4_addr"), ("tcp6", "ipv6_addr")):
        lines += [f"\tset {name} {{", f"\t\ttype {key_type}", f"\t\tsize {SET_SIZE}", "\t\tflags dynamic", "\t}", ""]
    lines += ["\tchain input {", "\t\ttype filter hook input priority filter; policy accept;"]
    if ports:
        dport = "{ " + ", ".join(str(port) for port in ports) + " }"
        for name, saddr in (("tcp4", "ip saddr"), ("tcp6", "ip6 saddr")):
            lines.append(
                f"\t\ttcp dport {dport} ct state new add @{name} {{ {saddr} ct count over {limit} }} jump over_limit"
            )
    lines += [
        "\t}",
        "",
        "\tchain over_limit {",
        f'\t\tlimit rate {LOG_RATE} burst 5 packets log prefix "{LOG_PREFIX}" level warn',
        "\t\treject with tcp reset",
        "\t}",
        "}",
    ]
    return "\n".join(lines) + "\n"
