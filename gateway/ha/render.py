"""Render keepalived's configuration for [ha] from the template in this package."""

from __future__ import annotations

import ipaddress
import json
import os
import pwd
import re
import shlex
import socket
import string
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from gateway.config import Config
from gateway.errors import HaError

# VRRP's advertisement interval (VRRPv3: fractions allowed). The peer takes over after three missed ones
# plus a skew under one more: 0.8-1.1 s after a power cut here, against 2.4-3.6 s at 1 s. A phone's
# INVITE to the dead box is retransmitted 0.5, 1.5 and 3.5 s after it was sent (RFC 3261 Timer A), so
# the address must move within 1.5 s for the next call to be answered within 3 s (bench/ha, issue 18).
ADVERT_INT_S = 0.3
CHECK_INTERVAL_S = 2
CHECK_TIMEOUT_S = 3  # the check's own timeouts are shorter (gateway.ha.check); Python's start on a busy box
IP_TIMEOUT_S = 5
PID_FILES = ("keepalived.pid", "keepalived-vrrp.pid")  # keepalived's own and its VRRP child's, in run_dir
# keepalived's config has its own quoting rules: keep what goes into it to plain path characters.
_PLAIN = re.compile(r"[A-Za-z0-9_./@:+=,-]+")


class HaTemplate(string.Template):
    """`%%name` placeholders, as gateway.sip.render's template uses."""

    delimiter = "%%"


@dataclass(frozen=True)
class KeepalivedInputs:
    """What keepalived's config depends on beyond [ha]."""

    interface: str
    own_ip: str  # this box's LAN address: the source of its VRRP adverts
    notify_fifo: Path
    check_command: tuple[str, ...]
    script_user: str


def own_lan_ip(config: Config) -> str:
    """This box's own LAN address: sip.listen, or (a wildcard) the one the kernel routes to ha.peer from."""
    address = ipaddress.ip_address(config.sip.listen)
    if address.is_loopback:
        raise HaError(f"ha.enabled needs sip.listen on the LAN, not {config.sip.listen}")
    if not address.is_unspecified:
        return str(address)
    peer = config.ha.peer or ""
    try:
        # A connected datagram socket sends nothing: the kernel only picks the source address.
        with socket.socket(socket.AF_INET6 if ":" in peer else socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((peer, config.ha.dmq_port))
            return str(probe.getsockname()[0])
    except OSError as err:
        raise HaError(f"ha.peer = {peer!r}: no route from this box ({err}); set sip.listen to its LAN address") from err


def interface_of(address: str) -> str:
    """The interface that carries address (blocking: runs `ip`; call off the loop)."""
    try:
        done = subprocess.run(
            ["ip", "-j", "addr", "show"], capture_output=True, text=True, check=True, timeout=IP_TIMEOUT_S
        )
        links = json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, json.JSONDecodeError) as err:
        raise HaError(f"ha.interface: cannot list this box's addresses with `ip`: {err}") from err
    for link in links:
        if any(info.get("local") == address for info in link.get("addr_info", [])):
            return str(link["ifname"])
    raise HaError(f"ha.interface: no interface has sip.listen's address {address}; set ha.interface")


def check_command(config: Config) -> tuple[str, ...]:
    """The track script: `lifeline ha check`'s code, run by its file with the two paths the daemon knows."""
    # `lifeline ha check` reads the whole config first, a second of CPU on a Pi every few seconds;
    # the check module on its own needs only the standard library (-I: nothing from the working directory).
    return (
        sys.executable,
        "-I",
        str(Path(__file__).with_name("check.py")),
        "--rpc",
        str(config.run_dir / "kamailio-rpc.sock"),
        "--db",
        str(config.db_path),
    )


def inputs_for(config: Config) -> KeepalivedInputs:
    """The inputs for this box (blocking: finds the interface; call off the loop)."""
    own = own_lan_ip(config)
    return KeepalivedInputs(
        interface=config.ha.interface or interface_of(own),
        own_ip=own,
        notify_fifo=config.run_dir / "keepalived.fifo",
        check_command=check_command(config),
        script_user=pwd.getpwuid(os.getuid()).pw_name,
    )


def render(config: Config, inputs: KeepalivedInputs) -> str:
    """The complete keepalived.conf text for [ha]."""
    ha = config.ha
    if ha.peer is None or ha.virtual_ip is None:  # the config's validation already refuses this
        raise HaError("ha.enabled needs ha.peer and ha.virtual_ip")
    words = [*inputs.check_command, str(inputs.notify_fifo), inputs.interface, inputs.script_user]
    for word in words:
        if not _PLAIN.fullmatch(word):
            raise HaError(f"{word!r}: keepalived's config cannot carry this path or name (spaces or quotes)")
    template = HaTemplate(resources.files("gateway.ha").joinpath("keepalived.conf.tmpl").read_text())
    return template.substitute(
        router_id=ha.router_id,
        notify_fifo=str(inputs.notify_fifo),
        script_user=inputs.script_user,
        check_command=shlex.join(inputs.check_command),
        check_interval=CHECK_INTERVAL_S,
        check_timeout=CHECK_TIMEOUT_S,
        interface=inputs.interface,
        priority=ha.priority,
        advert_int=ADVERT_INT_S,
        own_ip=inputs.own_ip,
        peer=ha.peer,
        virtual_ip=ha.virtual_ip,
    )


def keepalived_command(binary: str, cfg: Path, run_dir: Path) -> list[str]:
    """keepalived in the foreground, VRRP only, logging to stderr, its pid files in run_dir."""
    return [
        binary,
        "--dont-fork",
        "--log-console",
        "--log-detail",
        "--vrrp",
        "--use-file",
        str(cfg),
        "--pid",
        str(run_dir / PID_FILES[0]),
        "--vrrp_pid",
        str(run_dir / PID_FILES[1]),
    ]
