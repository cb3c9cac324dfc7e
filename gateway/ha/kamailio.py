"""Kamailio's sockets in pair mode: each one also on the virtual address, which every socket advertises."""

from __future__ import annotations

import ipaddress

from gateway.config import Config


def _host(address: str) -> str:
    """An address as a Kamailio socket names it (IPv6 in brackets)."""
    return f"[{address}]" if ":" in address else address


def virtual_listen(config: Config, listen: str) -> str:
    """The listen lines with [ha]'s virtual address added; unchanged when ha is off.

    The standby box has no virtual address yet, so its Kamailio binds it ahead of time: that needs
    net.ipv4.ip_nonlocal_bind=1 (firmware/sysctl/60-lifeline-ha.conf). Every socket advertises the
    virtual address in Via, Record-Route and Contact, so replies and in-dialog requests come back to
    whichever box holds it then, not to the box that first handled the dialog.
    """
    vip = config.ha.virtual_address
    if not config.ha.enabled or vip is None:
        return listen
    wildcard = ipaddress.ip_address(config.sip.listen).is_unspecified  # already accepts on every address
    lines = []
    for line in listen.splitlines():
        if not line.startswith("listen="):
            lines.append(line)
            continue
        proto, _, rest = line.removeprefix("listen=").partition(":")
        port = rest.rsplit(":", 1)[1].split()[0]
        lines.append(f"{line} advertise {_host(vip)}:{port}")
        if not wildcard:
            lines.append(f"listen={proto}:{_host(vip)}:{port}")
    return "\n".join(lines)
