"""Steps of bench/ha: a box's power cut and return, the shared address watched, a call timed, a single box.

Used with gateway.lab.pair_lab (needs root). A power cut here is every process of the box killed and
its LAN link taken down in the same instant: a dead box neither advertises nor answers ARP.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from pathlib import Path

from gateway.lab.daemon import LifelineProcess
from gateway.lab.netns import remove_netns
from gateway.lab.pair_lab import VIP, PairLab, contacts
from gateway.lab.phones import Phone, PhoneCall, SipEndpoint


def _ip(*args: str, check: bool = True) -> None:
    subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=30)


def box_of(lab: PairLab, role: str) -> LifelineProcess:
    """Box a or b of the pair."""
    return lab.a if role == "a" else lab.b


def link_of(lab: PairLab, role: str) -> str:
    """The box's end of its veth to the LAN bridge (as gateway.lab.pair_lab names it)."""
    return lab.ns[role] + "0"


def power_cut(lab: PairLab, role: str) -> float:
    """Every process of the box stopped, then killed, then its link down; the wall-clock instant of the kill."""
    lab.power_cut(role)
    killed = time.time()
    # The box's kernel lives on in the lab (a namespace, not a machine): silence it as the power cut would.
    _ip("-n", lab.ns[role], "link", "set", link_of(lab, role), "down")
    return killed


def power_back(lab: PairLab, role: str) -> None:
    """The box boots again: no shared address on its link (a fresh boot holds none), link up, daemon started."""
    box = box_of(lab, role)
    box.stop()  # reaps the killed daemon
    _ip("-n", lab.ns[role], "addr", "del", f"{VIP}/24", "dev", link_of(lab, role), check=False)
    _ip("-n", lab.ns[role], "link", "set", link_of(lab, role), "up")
    lab.start(box)


class AddressWatch:
    """`ip monitor address` in a namespace: the wall-clock instant the shared address first appears there."""

    def __init__(self, netns: str, address: str = VIP) -> None:
        self.address = address
        self.seen: float | None = None
        self._proc = subprocess.Popen(
            ["ip", "-n", netns, "monitor", "address"], stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        time.sleep(0.05)  # let ip subscribe before anything moves

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            if self.seen is None and f"inet {self.address}/" in line and not line.startswith("Deleted"):
                self.seen = time.time()

    def close(self) -> None:
        """Stop watching."""
        self._proc.terminate()
        self._proc.wait(5)
        self._thread.join(5)


def call_until_answered(ep: SipEndpoint, caller: Phone, callee: Phone, number: str, timeout: float) -> PhoneCall:
    """Dial (again after each failed attempt, as a user would) until the callee's answer is confirmed.

    pjsua2 retransmits the INVITE itself (RFC 3261 Timer A: 0.5, 1, 2, 4 s apart) as a desk phone does;
    the callee answers 200 as soon as it rings.
    """
    deadline = time.monotonic() + timeout
    call = caller.call(number)
    answered: set[int] = set()
    while time.monotonic() < deadline:
        ep.pump(5)
        for index, incoming in enumerate(callee.incoming):
            if index not in answered and incoming.state in ("INCOMING", "EARLY"):
                incoming.answer_with(200)
                answered.add(index)
        if call.state == "CONFIRMED":
            return call
        if call.state == "DISCONNECTED":
            call = caller.call(number)
    raise AssertionError(f"no call answered within {timeout:.0f} s: last {call.record.last_code}")


def hang_up(ep: SipEndpoint, call: PhoneCall, callee: Phone) -> None:
    """Hang up and wait until the callee has the BYE (pjsua keeps a call's slot until then)."""
    call.hang_up()
    far = callee.incoming[-1]
    ep.wait_for(lambda: far.state == "DISCONNECTED", 10, "the callee to get the BYE")
    ep.pump(200)


def bindings(box: LifelineProcess, number: str) -> set[str]:
    """The contact addresses the box holds for number."""
    text = contacts(box, number)
    return {c["Contact"]["Address"] for c in json.loads(text)["Contacts"]} if text else set()


def not_replicated(active: LifelineProcess, standby: LifelineProcess, numbers: list[str], timeout: float) -> int:
    """How many numbers' bindings on the active box are still not all on the standby after timeout seconds."""
    deadline = time.monotonic() + timeout
    missing = list(numbers)
    while missing and time.monotonic() < deadline:
        missing = [n for n in missing if not bindings(active, n) <= bindings(standby, n)]
        time.sleep(0.2)
    return len(missing)


def cpu_seconds(netns: str) -> float:
    """CPU time (user + system) used so far by the processes running in a namespace."""
    ticks = 0
    for pid in subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True).stdout.split():
        with contextlib.suppress(OSError, IndexError, ValueError):  # one may have ended meanwhile
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (proc(5): fields 14 and 15)
    return ticks / os.sysconf("SC_CLK_TCK")


def add_lan_addresses(lab: PairLab, addresses: list[str]) -> None:
    """More phones' addresses on the LAN bridge (one per storm phone: the flood limit is per source)."""
    batch = "".join(f"addr add {address}/24 dev br0\n" for address in addresses)
    subprocess.run(
        ["ip", "-n", lab.ns["lan"], "-batch", "-"], input=batch, check=True, capture_output=True, text=True, timeout=30
    )


class SingleBox:
    """One box on the pair's LAN, configured as a pair's box is but without [ha]: the storm's yardstick."""

    def __init__(
        self, lab: PairLab, workdir: Path, tag: str, address: str, extensions_csv: Path, realm: str, **sip: object
    ) -> None:
        self.ns, self.address = f"ll{tag}s", address
        _ip("netns", "add", self.ns)
        self._ns_made = True
        _ip("-n", self.ns, "link", "set", "lo", "up")
        inner, outer = f"ll{tag}s0", f"ll{tag}s1"
        lan = lab.ns["lan"]
        _ip("link", "add", inner, "netns", self.ns, "type", "veth", "peer", "name", outer, "netns", lan)
        _ip("-n", lan, "link", "set", outer, "master", "br0")
        _ip("-n", lan, "link", "set", outer, "up")
        _ip("-n", self.ns, "addr", "add", f"{address}/24", "dev", inner)
        _ip("-n", self.ns, "link", "set", inner, "up")
        config: dict[str, dict[str, object]] = {
            "cloud": {"realm": realm},
            "sip": {"listen": address, "port": 5060, "children": 2, **sip},
            "cdr": {},
        }
        self.box = LifelineProcess(workdir, config, prefix=("ip", "netns", "exec", self.ns))
        self.box.cli("extensions", "import", str(extensions_csv))

    def start(self) -> None:
        """Start it and hold it in SURVIVAL, as the pair's boxes are held."""
        self.box.start()
        self.box.set_mode("survival")

    def close(self) -> None:
        """Stop the daemon, kill what is left and delete the namespace."""
        if not self._ns_made:
            return
        with contextlib.suppress(Exception):
            self.box.stop()
        remove_netns([self.ns])
        self._ns_made = False
