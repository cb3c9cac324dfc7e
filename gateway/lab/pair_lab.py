"""Two Lifeline boxes as an [ha] pair on one office LAN, in network namespaces (needs root).

The LAN is a bridge in the phones' namespace; each box has a namespace of its own joined to it by a
veth pair. Both run the real daemon (Kamailio, keepalived) pointing at each other. Phones and
attackers use addresses on the bridge. `close()` kills what runs inside and removes every namespace.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.errors import RpcError
from gateway.ha.key import write_new_key
from gateway.lab.daemon import LifelineProcess
from gateway.lab.netns import kill_all_in, remove_netns
from gateway.sip.rpc import KamailioRpc, item_value

NET = "10.203.1"  # exists only inside the namespaces below
BOX_A, BOX_B, VIP = f"{NET}.71", f"{NET}.72", f"{NET}.70"
PHONES, ATTACKER, FORGER = f"{NET}.10", f"{NET}.73", f"{NET}.74"
CLOUD = f"{NET}.80"  # a lab cloud on the LAN bridge, for tests whose boxes probe one (cloud={"sbc": ...})
DMQ_PORT = 5090
SPLIT_TABLE = "lifeline_split"  # nftables table of cut_between() in both boxes


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


class PairLab:
    """Namespaces for phones (the LAN bridge), box A and box B; the two daemons, not yet started."""

    def __init__(
        self,
        workdir: Path,
        tag: str,
        extensions_csv: Path,
        realm: str,
        *,
        one_key: bool = True,
        cdr: dict[str, object] | None = None,
        cloud: dict[str, object] | None = None,
        health: dict[str, object] | None = None,
        **sip: object,
    ) -> None:
        self.ns = {role: f"ll{tag}{role}" for role in ("lan", "a", "b")}
        self._created: list[str] = []
        self._build(tag)
        # One pair key, as an installer copies it to both boxes; one_key=False: each box its own (a mistake).
        keys = [workdir / "pair.key"] * 2 if one_key else [workdir / "a.key", workdir / "b.key"]
        self.key_file = keys[0]  # box A's
        for path in set(keys):
            write_new_key(path)
        self._cdr = cdr or {}
        self._cloud, self._health = cloud or {}, health or {}
        self.a = self._box(workdir / "a", "a", BOX_A, BOX_B, 150, extensions_csv, realm, keys[0], sip)
        self.b = self._box(workdir / "b", "b", BOX_B, BOX_A, 100, extensions_csv, realm, keys[1], sip)

    def _build(self, tag: str) -> None:
        for name in self.ns.values():
            _ip("netns", "add", name)
            self._created.append(name)
            _ip("-n", name, "link", "set", "lo", "up")
        lan = self.ns["lan"]
        _ip("-n", lan, "link", "add", "br0", "type", "bridge")
        _ip("-n", lan, "link", "set", "br0", "up")
        for address in (PHONES, ATTACKER, FORGER, CLOUD):
            _ip("-n", lan, "addr", "add", f"{address}/24", "dev", "br0")
        for role, address in (("a", BOX_A), ("b", BOX_B)):
            inner, outer = f"ll{tag}{role}0", f"ll{tag}{role}1"
            _ip("link", "add", inner, "netns", self.ns[role], "type", "veth", "peer", "name", outer, "netns", lan)
            _ip("-n", lan, "link", "set", outer, "master", "br0")
            _ip("-n", lan, "link", "set", outer, "up")
            _ip("-n", self.ns[role], "addr", "add", f"{address}/24", "dev", inner)
            _ip("-n", self.ns[role], "link", "set", inner, "up")
            # The standby's Kamailio binds the shared address before it holds it (firmware/sysctl).
            self.run(role, "sysctl", "-qw", "net.ipv4.ip_nonlocal_bind=1")

    def run(self, role: str, *cmd: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a command inside a namespace (input: its stdin)."""
        return subprocess.run(
            ["ip", "netns", "exec", self.ns[role], *cmd],
            input=input,
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        )

    def _box(
        self,
        workdir: Path,
        role: str,
        own: str,
        peer: str,
        priority: int,
        extensions_csv: Path,
        realm: str,
        key_file: Path,
        sip: dict[str, object],
    ) -> LifelineProcess:
        config: dict[str, dict[str, Any]] = {
            "cloud": {"realm": realm, **self._cloud},
            "sip": {"listen": own, "port": 5060, "children": 2, **sip},
            "ha": {
                "enabled": True,
                "peer": peer,
                "virtual_ip": f"{VIP}/24",
                "priority": priority,
                "key_file": str(key_file),
            },
            "cdr": dict(self._cdr),
            "health": dict(self._health),
        }
        daemon = LifelineProcess(workdir, config, prefix=("ip", "netns", "exec", self.ns[role]))
        daemon.cli("extensions", "import", str(extensions_csv))
        return daemon

    def start(self, box: LifelineProcess, override: str | None = "survival") -> None:
        """Start a box and hold it in SURVIVAL (no cloud here: the boxes serve the phones themselves).

        The override holds for the pair (gateway/ha/pair_mode.py): the second box sets the same one again.
        override=None leaves the mode to the boxes (a test with a lab cloud at CLOUD).
        """
        box.start()
        if override is not None:
            box.set_mode(override)

    def role(self, box: LifelineProcess) -> str | None:
        """The box's part in the pair as `lifeline status` shows it (active, standby, ...)."""
        ha = box.status().get("ha") or {}
        role = ha.get("role")
        return str(role) if role is not None else None

    def power_cut(self, role: str) -> None:
        """Every process of the box stopped, then killed: nobody gets to say goodbye."""
        kill_all_in(self.ns[role], power_cut=True)

    def cut_between(self) -> None:
        """Split brain: each box drops every packet from or to the other (VRRP, DMQ); phones reach both."""
        for role, peer in (("a", BOX_B), ("b", BOX_A)):
            # A table of its own, so heal_between() removes exactly this; ARP is not IP and still passes.
            rules = (
                f"table inet {SPLIT_TABLE} {{\n"
                f" chain input {{ type filter hook input priority -10; ip saddr {peer} drop; }}\n"
                f" chain output {{ type filter hook output priority -10; ip daddr {peer} drop; }}\n}}\n"
            )
            subprocess.run(
                ["ip", "netns", "exec", self.ns[role], "nft", "-f", "-"],
                input=rules,
                check=True,
                capture_output=True,
                text=True,
                timeout=30,
            )

    def heal_between(self) -> None:
        """The link between the boxes back (cut_between undone)."""
        for role in ("a", "b"):
            self.run(role, "nft", "delete", "table", "inet", SPLIT_TABLE)

    def close(self) -> None:
        """Stop both daemons, kill what is left inside and delete the namespaces."""
        for box in (self.b, self.a):
            with contextlib.suppress(Exception):
                box.stop()
        remove_netns(reversed(self._created))
        self._created.clear()


def rpc(box: LifelineProcess) -> KamailioRpc:
    """The box's Kamailio RPC (a unix socket: reachable from any namespace)."""
    return KamailioRpc(box.workdir / "run" / "kamailio-rpc.sock")


def contacts(box: LifelineProcess, number: str) -> str:
    """The box's bindings of number as text ("" for none)."""
    try:
        return json.dumps(rpc(box).call_blocking("ul.lookup", "location", number))
    except RpcError:  # usrloc answers an error for an AOR without bindings
        return ""


def failed_logins(box: LifelineProcess, source: str) -> int:
    """The box's count of failed logins from source (htable authfail, which the pair replicates)."""
    try:
        value = rpc(box).call_blocking("htable.get", "authfail", source)
    except RpcError:  # no such key: none counted
        return 0
    return int(item_value(value) or 0)


def resynced_since_start(box: LifelineProcess) -> bool:
    """Whether the box's Kamailio has asked the peer for everything once its start settled (route[HA_SETTLE]).

    Set before that request is sent, so a binding seen before this is True came by other means.
    """
    return int(item_value(rpc(box).call_blocking("pv.shvGet", "ha_settled")) or 0) == 1


def status_line_over_tcp(
    source: str, box: str, port: int, request: Callable[[str, int], str], wait_s: float
) -> str | None:
    """Send request(own host, own port) over a TCP connection from source; the answer's status line, None if none."""
    with socket.create_connection((box, port), timeout=3, source_address=(source, 0)) as conn:
        host, own_port = conn.getsockname()[:2]
        conn.sendall(request(host, own_port).encode())
        conn.settimeout(wait_s)
        try:
            answer = conn.recv(4096).decode(errors="replace")
        except TimeoutError:
            return None
        return answer.split("\r\n", 1)[0] or None
