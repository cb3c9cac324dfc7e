"""A branch office in network namespaces: phones — branch (Lifeline) — router — cloud, joined by veth pairs.

Outages are nftables rules in the router's forward chain (the cloud goes silent), in the branch's own
output chain (a send to the cloud fails at once), or a link set down. Everything lives in namespaces
this process creates and removes; no packet reaches the host's own interfaces.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

CLONE_NEWNET = 0x40000000
NET = "10.201"  # addresses exist only inside the namespaces below


@dataclass(frozen=True)
class Addresses:
    """Who is where in the lab."""

    phone: str = f"{NET}.1.10"
    branch_lan: str = f"{NET}.1.1"
    branch_wan: str = f"{NET}.2.1"
    router_branch: str = f"{NET}.2.254"
    router_cloud: str = f"{NET}.3.254"
    cloud: str = f"{NET}.3.2"
    cloud2: str = f"{NET}.3.3"  # a second region's SBC (BranchLab(regions=2))


OUTAGES = {
    "all": ["drop"],
    "sip": ["udp dport 5060 drop", "udp sport 5060 drop", "tcp dport 5060 drop", "tcp sport 5060 drop"],
    "dns": ["udp dport 53 drop", "udp sport 53 drop", "tcp dport 53 drop", "tcp sport 53 drop"],
    "api": ["tcp dport 443 drop", "tcp sport 443 drop"],
    # The primary region's SBC alone goes silent (its DNS and API, on the same address, stay up).
    "sip-primary": ["ip daddr {cloud} udp dport 5060 drop", "ip saddr {cloud} udp sport 5060 drop"],
}
# In the branch itself: its packets to the cloud are refused on their way out, so every send fails at
# once (EPERM), as a dead WAN route or an ICMP error makes it, instead of going unanswered.
BRANCH_OUTAGES = {
    "send-error": ["ip daddr {cloud} drop"],
    "send-error-primary": ["ip daddr {cloud} udp dport 5060 drop"],  # the primary region's SBC alone
}


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


class Topology:
    """Four namespaces and the links between them; `close()` removes everything."""

    def __init__(self, tag: str) -> None:
        # Interface names are limited to 15 characters: keep the tag short.
        self.tag = tag
        self.ns = {role: f"ll{tag}{role}" for role in ("ph", "br", "rt", "cl")}
        self.addr = Addresses()
        self.etc = Path("/etc/netns")
        self._created: list[str] = []

    def exec_prefix(self, role: str) -> list[str]:
        """Command prefix that runs a program inside a namespace."""
        return ["ip", "netns", "exec", self.ns[role]]

    def run(self, role: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command inside a namespace."""
        return subprocess.run([*self.exec_prefix(role), *cmd], check=check, capture_output=True, text=True, timeout=30)

    def _link(self, a: str, b: str, a_if: str, b_if: str) -> None:
        _ip("link", "add", a_if, "netns", self.ns[a], "type", "veth", "peer", "name", b_if, "netns", self.ns[b])

    def create(self, resolver: str | None = None) -> None:
        """Build the namespaces, links, addresses and routes."""
        for name in self.ns.values():
            _ip("netns", "add", name)
            self._created.append(name)
            _ip("-n", name, "link", "set", "lo", "up")
        t, a = self.tag, self.addr
        self._link("ph", "br", f"ll{t}p0", f"ll{t}b0")
        self._link("br", "rt", f"ll{t}b1", f"ll{t}r0")
        self._link("rt", "cl", f"ll{t}r1", f"ll{t}c0")
        for role, iface, cidr in (
            ("ph", f"ll{t}p0", f"{a.phone}/24"),
            ("br", f"ll{t}b0", f"{a.branch_lan}/24"),
            ("br", f"ll{t}b1", f"{a.branch_wan}/24"),
            ("rt", f"ll{t}r0", f"{a.router_branch}/24"),
            ("rt", f"ll{t}r1", f"{a.router_cloud}/24"),
            ("cl", f"ll{t}c0", f"{a.cloud}/24"),
            ("cl", f"ll{t}c0", f"{a.cloud2}/24"),
        ):
            _ip("-n", self.ns[role], "addr", "add", cidr, "dev", iface)
            _ip("-n", self.ns[role], "link", "set", iface, "up")
        _ip("-n", self.ns["ph"], "route", "add", "default", "via", a.branch_lan)
        _ip("-n", self.ns["br"], "route", "add", "default", "via", a.router_branch)
        _ip("-n", self.ns["rt"], "route", "add", f"{NET}.1.0/24", "via", a.branch_wan)
        _ip("-n", self.ns["cl"], "route", "add", "default", "via", a.router_cloud)
        self.run("rt", "sysctl", "-qw", "net.ipv4.ip_forward=1")
        if resolver:
            # `ip netns exec` bind-mounts this over /etc/resolv.conf for the branch's programs.
            conf = self.etc / self.ns["br"]
            conf.mkdir(parents=True, exist_ok=True)
            (conf / "resolv.conf").write_text(f"nameserver {resolver}\noptions timeout:1 attempts:1\n")

    def outage(self, kind: str) -> None:
        """Start an outage: all, sip, sip-primary, dns, api, loss:PERCENT (router), or send-error (branch)."""
        self.restore()
        role, hook = "rt", "forward"
        if kind.startswith("loss:"):
            rules = [f"numgen random mod 100 < {int(kind[5:])} drop"]
        elif kind in BRANCH_OUTAGES:
            role, hook = "br", "output"
            rules = [rule.format(cloud=self.addr.cloud) for rule in BRANCH_OUTAGES[kind]]
        else:
            rules = [rule.format(cloud=self.addr.cloud) for rule in OUTAGES[kind]]
        body = "\n".join(f"    {rule}" for rule in rules)
        script = (
            f"table inet outage {{\n  chain {hook} {{\n    type filter hook {hook} priority 0; policy accept;\n"
            f"{body}\n  }}\n}}\n"
        )
        subprocess.run([*self.exec_prefix(role), "nft", "-f", "-"], input=script, check=True, text=True, timeout=30)

    def restore(self) -> None:
        """End any outage."""
        for role in ("rt", "br"):
            self.run(role, "nft", "delete", "table", "inet", "outage", check=False)

    def link(self, role_pair: str, up: bool) -> None:
        """Set the branch–router ("wan") or phones–branch ("lan") link up or down."""
        iface, ns = {"wan": (f"ll{self.tag}r0", "rt"), "lan": (f"ll{self.tag}b0", "br")}[role_pair]
        _ip("-n", self.ns[ns], "link", "set", iface, "up" if up else "down")

    def close(self) -> None:
        """Kill what runs inside and delete the namespaces."""
        remove_netns(reversed(self._created))
        self._created.clear()
        shutil.rmtree(self.etc / self.ns["br"], ignore_errors=True)


def kill_all_in(netns: str, *, power_cut: bool = False) -> None:
    """SIGKILL every process in a namespace; power_cut: all stopped first, so none sees another die."""
    # Without the stop, keepalived would give the shared address away on the SIGTERM its dying parent
    # sends it, and a peer would learn of the failure from a goodbye a real power cut never sends.
    pids = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True, timeout=30).stdout.split()
    for sig in (signal.SIGSTOP, signal.SIGKILL) if power_cut else (signal.SIGKILL,):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):  # one may have ended meanwhile
                os.kill(int(pid), sig)


def remove_netns(names: Iterable[str]) -> None:
    """Kill what runs in each namespace and delete it (one that is already gone is no error)."""
    for name in names:
        kill_all_in(name)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


@contextlib.contextmanager
def inside(netns: str) -> Iterator[None]:
    """Run this thread inside a namespace: sockets opened meanwhile (pjsua2's too) stay there."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    with open("/proc/thread-self/ns/net") as home, open(f"/run/netns/{netns}") as target:
        if libc.setns(target.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {netns} failed")
        try:
            yield
        finally:
            libc.setns(home.fileno(), CLONE_NEWNET)
