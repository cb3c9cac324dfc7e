"""The topology `lifeline lab` tells its story on: a BranchLab with a call-record sink, a modem and phones."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.cdr.labsink import Fault, LabWebhookReceiver
from gateway.lab.branch import BranchLab
from gateway.lab.loopback import LoopbackTopology, loopback_addresses
from gateway.lab.netns import Addresses, Topology, inside
from gateway.lab.phones import Phone, SipEndpoint
from gateway.lab.story_measure import ArrivalLog
from gateway.trunk import tones
from gateway.trunk.profiles import Family
from gateway.trunk.sim import FarEnd, SimConfig
from gateway.trunk.sim.thread import SimThread

SINK_PORT = 8080  # inside the cloud's namespace: nothing else listens there
ATTACKER_HOST = 66  # the attacker's address on the phones' LAN: 10.201.1.66
TRUNK_EXT = "1009"
NAMES = {"1001": "alice", "1002": "bob", "1003": "carol", "1004": "dave"}
FAR_END_HZ = 1000.0  # what the person at the other end of the mobile line plays


class CloudSink:
    """The cloud's call-record sink (gateway.cdr.labsink) on a loop thread inside the cloud's namespace."""

    def __init__(self, netns: str | None, host: str, secret: str) -> None:
        self.log = ArrivalLog()
        self.silent = False  # the loopback lab's WAN cut: every delivery goes unanswered
        self.receiver = LabWebhookReceiver(secret, host=host, port=SINK_PORT, records=self.log, policy=self._fault)
        self.netns = netns
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="lab-cdr-sink", daemon=True)

    def _fault(self, index: int, ids: list[str]) -> Fault | None:
        # Longer than the sender's timeout (a silence to it), short enough not to hold up the teardown.
        return Fault(status=503, delay_s=5.0) if self.silent else None

    def _serve(self) -> None:
        # The listening socket is opened on this thread: it lives in the cloud's namespace.
        with inside(self.netns) if self.netns else contextlib.nullcontext():
            self._loop.run_forever()

    def freeze(self) -> None:
        """Answer nothing from now on (what the loopback lab's WAN cut does to the cloud)."""
        self.silent = True

    def thaw(self) -> None:
        """Answer again."""
        self.silent = False

    def start(self) -> None:
        """Listen on host:SINK_PORT."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.receiver.start(), self._loop).result(10)

    def records(self) -> list[dict[str, Any]]:
        """The records received so far (each once)."""
        return list(self.receiver.records.values())

    def arrivals(self) -> list[float]:
        """When (monotonic) each record first arrived."""
        return list(self.log.arrived.values())

    def stop(self) -> None:
        """Stop listening and end the thread."""
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):  # teardown goes on whatever the sink's state
            asyncio.run_coroutine_threadsafe(self.receiver.stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


class StoryLab:
    """Everything the story needs, built by `start()` and removed by `close()` whatever happened between."""

    def __init__(self, *, hold_down_s: float, log: Callable[[str], None], loopback: bool = False) -> None:
        self.tag = f"lb{os.getpid() % 10000}"
        # Short: Kamailio's RPC socket lives below it, and a unix socket path has room for ~100 bytes.
        self.workdir = Path(tempfile.mkdtemp(prefix=f"ll-{self.tag}-"))
        self.log = log
        self.passwords = {n: f"{name}-lab-{secrets.token_hex(6)}" for n, name in NAMES.items()}
        self.passwords[TRUNK_EXT] = f"trunk-lab-{secrets.token_hex(6)}"
        self.secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        self.hold_down_s = hold_down_s
        self.loopback = loopback  # 127.0.0.0/8 addresses instead of network namespaces (no root needed)
        self.branch: BranchLab | None = None
        self.sink: CloudSink | None = None
        self.sim: SimThread | None = None
        self.ep: SipEndpoint | None = None
        self.phones: dict[str, Phone] = {}
        self._in_phones: contextlib.AbstractContextManager[None] | None = None

    @property
    def namespaces(self) -> list[str]:
        """The namespaces this lab creates (none on loopback)."""
        return [] if self.loopback else [f"ll{self.tag}{role}" for role in ("ph", "br", "rt", "cl")]

    @property
    def where(self) -> str:
        """Where the lab lives, in words."""
        if isinstance(self.topology, LoopbackTopology):
            return f"loopback {self.topology.network}"
        return f"namespaces {' '.join(self.namespaces)}"

    @property
    def topology(self) -> Topology | LoopbackTopology:
        """The lab's network."""
        assert self.branch is not None
        return self.branch.topology

    @property
    def attacker(self) -> str:
        """The attacker's address on the phones' LAN."""
        return f"{self.addr.phone.rsplit('.', 1)[0]}.{ATTACKER_HOST}"

    @property
    def addr(self) -> Any:
        """The lab's addresses."""
        assert self.branch is not None
        return self.branch.addr

    def start(self) -> None:
        """Modem, namespaces, cloud (SIP, DNS, API, call-record sink), Lifeline, then the phones' endpoint."""
        far = FarEnd(source=tones.Tone((FAR_END_HZ,)), answer_after_s=0.5)
        self.sim = SimThread(
            SimConfig(Family.QUECTEL, time_scale=0.05, seed=17, max_rings=400), self.workdir / "by-id", far
        )
        self.sim.start()
        a = loopback_addresses(os.getpid() % 10000) if self.loopback else Addresses()
        sections: dict[str, Any] = {
            "sip": {"listen": a.branch_lan, "port": 5060, "transports": ["udp"], "children": 2,
                    "ban_after_failures": 5, "ban_s": 60},
            "cdr": {"interval_s": 0.5, "backoff_base_s": 0.2, "backoff_max_s": 1.0},
            "cdr.webhook": {"url": f"http://{a.cloud}:{SINK_PORT}/cdr", "secret": self.secret, "timeout_s": 2.0},
            "emergency": {"notify": ["1002"]},
            "trunk": {"extension": TRUNK_EXT, "ring_group": ["1001", "1002"], "country": "DE", "poll_s": 1.0,
                      "command_timeout_s": 1.0,
                      "modems": [{"name": "lte0", "family": "quectel", "by_id_dir": str(self.sim.sim.by_id_dir)}]},
        }  # fmt: skip
        self.branch = BranchLab(
            self.workdir / "lab", self.tag, self.passwords, {"hold_down_s": self.hold_down_s}, sections,
            loopback=self.loopback,
        )  # fmt: skip
        self.branch.start()
        assert self.addr == a, "the lab's addresses moved (netns.py, loopback.py)"
        topology = self.topology
        self.sink = CloudSink(topology.ns["cl"], a.cloud, self.secret)
        self.sink.start()
        self.ep = SipEndpoint(log_level=0)
        if isinstance(topology, LoopbackTopology):
            topology.silencers.append((self.sink.freeze, self.sink.thaw))
            return  # every 127.0.0.0/8 address is there already, the attacker's too
        topology.run("ph", "ip", "addr", "add", f"{self.attacker}/24", "dev", f"ll{self.tag}p0")
        self._in_phones = inside(topology.ns["ph"])
        self._in_phones.__enter__()  # the phones' sockets (and sipp, started from here) live on the LAN

    def cloud_idle(self) -> bool:
        """Whether the cloud has no transaction in progress (those it answered and keeps a while don't count)."""
        assert self.branch is not None and self.branch.cloud is not None
        stats: Any = self.branch.cloud.rpc.call_blocking("tm.stats")
        return int(stats["current"]) <= int(stats["waiting"])

    def phone(self, number: str) -> Phone:
        """The lab phone of this extension (made on first use)."""
        assert self.ep is not None and self.branch is not None
        if number not in self.phones:
            self.phones[number] = self.branch.phone(self.ep, number)
        return self.phones[number]

    def close(self) -> None:
        """Remove everything: phones, the sink, Lifeline, the cloud, the namespaces, the modem, the files."""
        steps: list[tuple[str, Callable[[], None]]] = [("phones", self._close_phones)]
        if self.sink is not None:
            steps.append(("sink", self.sink.stop))
        if self.branch is not None:
            steps.append(("branch", self.branch.close))
        if self.sim is not None:
            steps.append(("modem", self.sim.stop))
        for name, step in steps:
            try:
                step()
            except Exception as err:  # one part's failure must not leave the others behind
                self.log(f"teardown of the {name} failed: {err!r}")
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _close_phones(self) -> None:
        if self.ep is not None:
            ep, self.ep = self.ep, None
            ep.close()
        if self._in_phones is not None:
            ctx, self._in_phones = self._in_phones, None
            ctx.__exit__(None, None, None)
