"""A branch office on loopback addresses, for users without root: no namespaces, the cloud cut by freezing it.

The whole of 127.0.0.0/8 is bindable by anyone, so phones, Lifeline, the attacker and the cloud each
get an address of one /24 picked from the process id. Without a router to drop packets, the WAN cut
is a silent cloud: every cloud process is stopped (SIGSTOP), its sockets still there but answering
nothing, as a hung or unreachable cloud behaves, and continued (SIGCONT) when the WAN returns.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable

from gateway.lab.netns import Addresses


def loopback_addresses(tag_number: int) -> Addresses:
    """One 127.X.Y.0/24 of this lab's own (away from 127.0.0.x, which tests and other programs use)."""
    net = f"127.{20 + (tag_number >> 8) % 200}.{tag_number % 256}"
    return Addresses(
        phone=f"{net}.10",
        branch_lan=f"{net}.1",
        branch_wan=f"{net}.1",
        router_branch=f"{net}.1",
        router_cloud=f"{net}.2",
        cloud=f"{net}.2",
        cloud2=f"{net}.3",
    )


class LoopbackTopology:
    """What netns.Topology offers the lab, on loopback: outages freeze the cloud's processes."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.ns: dict[str, str | None] = {role: None for role in ("ph", "br", "rt", "cl")}
        self.addr = loopback_addresses(os.getpid() % 10000)
        # (freeze, thaw) of each part of the cloud, registered as they start.
        self.silencers: list[tuple[Callable[[], None], Callable[[], None]]] = []
        self.silent = False

    @property
    def network(self) -> str:
        """The lab's /24."""
        return self.addr.phone.rsplit(".", 1)[0] + ".0/24"

    def exec_prefix(self, role: str) -> list[str]:
        """Nothing: every program runs on this host's own network."""
        return []

    def run(self, role: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command (on the host's network)."""
        return subprocess.run(list(cmd), check=check, capture_output=True, text=True, timeout=30)

    def create(self, resolver: str | None = None) -> None:
        """Nothing to build: loopback addresses need no configuring."""

    def outage(self, kind: str) -> None:
        """Cut the WAN: only "all" exists here, the whole cloud going silent."""
        if kind != "all":
            raise ValueError(f"the loopback lab has no {kind!r} outage (it needs network namespaces: root)")
        self.restore()
        self.silent = True
        for freeze, _ in self.silencers:
            freeze()

    def restore(self) -> None:
        """Let the cloud answer again."""
        if not self.silent:
            return
        self.silent = False
        for _, thaw in self.silencers:
            thaw()

    def close(self) -> None:
        """Thaw the cloud, so its processes can be stopped."""
        self.restore()
