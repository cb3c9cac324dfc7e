"""Two Lifeline boxes as an [ha] pair on one office LAN, in network namespaces (needs root).

The LAN is a bridge in the phones' namespace; each box has a namespace of its own joined to it by a
veth pair. Both run the real daemon (Kamailio, keepalived) pointing at each other. Phones and
attackers use addresses on the bridge. `close()` kills what runs inside and removes every namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.errors import RpcError
from gateway.ha.key import write_new_key
from gateway.lab.daemon import LifelineProcess
from gateway.sip.rpc import KamailioRpc

NET = "10.203.1"  # exists only inside the namespaces below
BOX_A, BOX_B, VIP = f"{NET}.71", f"{NET}.72", f"{NET}.70"
PHONES, ATTACKER, FORGER = f"{NET}.10", f"{NET}.73", f"{NET}.74"
DMQ_PORT = 5090


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
        **sip: object,
    ) -> None:
        self.ns = {role: f"ll{tag}{role}" for role in ("lan", "a", "b")}
        self._created: list[str] = []
        self._build(tag)
        # One pair key, as an installer copies it to both boxes; one_key=False: each box its own (a mistake).
        keys = [workdir / "pair.key"] * 2 if one_key else [workdir / "a.key", workdir / "b.key"]
        for path in set(keys):
            write_new_key(path)
        self._cdr = cdr or {}
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
        for address in (PHONES, ATTACKER, FORGER):
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

    def run(self, role: str, *cmd: str) -> subprocess.CompletedProcess[str]:
        """Run a command inside a namespace."""
        return subprocess.run(
            ["ip", "netns", "exec", self.ns[role], *cmd], check=True, capture_output=True, text=True, timeout=30
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
            "cloud": {"realm": realm},
            "sip": {"listen": own, "port": 5060, "children": 2, **sip},
            "ha": {
                "enabled": True,
                "peer": peer,
                "virtual_ip": f"{VIP}/24",
                "priority": priority,
                "key_file": str(key_file),
            },
            "cdr": dict(self._cdr),
        }
        daemon = LifelineProcess(workdir, config, prefix=("ip", "netns", "exec", self.ns[role]))
        daemon.cli("extensions", "import", str(extensions_csv))
        return daemon

    def start(self, box: LifelineProcess) -> None:
        """Start a box and hold it in SURVIVAL (no cloud here: the boxes serve the phones themselves)."""
        box.start()
        box.set_mode("survival")

    def role(self, box: LifelineProcess) -> str | None:
        """The box's part in the pair as `lifeline status` shows it (active, standby, ...)."""
        ha = box.status().get("ha") or {}
        role = ha.get("role")
        return str(role) if role is not None else None

    def close(self) -> None:
        """Stop both daemons, kill what is left inside and delete the namespaces."""
        for box in (self.b, self.a):
            with contextlib.suppress(Exception):
                box.stop()
        for name in reversed(self._created):
            pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), 9)
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
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


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 10.0, step: float = 0.005) -> float:
    """Poll until predicate holds; the seconds it took."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)
    return time.monotonic() - start
