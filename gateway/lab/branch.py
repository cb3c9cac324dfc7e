"""A whole branch office for tests and benchmarks: namespaces, a cloud (SIP, DNS, HTTPS API) and Lifeline."""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trustme

from gateway.lab.cloud import LabCloud
from gateway.lab.daemon import LifelineProcess
from gateway.lab.loopback import LoopbackTopology
from gateway.lab.netns import Topology
from gateway.mirror.records import Extension
from gateway.sip.render import free_port
from gateway.store import events_since

if TYPE_CHECKING:  # pjsua2 only where phones are made
    from gateway.lab.phones import Phone, SipEndpoint

REALM = "asterisk"
SBC_NAME = "sbc.cloud.test"
API_NAME = "api.cloud.test"


class BranchLab:
    """phones — branch (Lifeline) — router — cloud, all real processes, in namespaces."""

    def __init__(
        self,
        workdir: Path,
        tag: str,
        passwords: dict[str, str],
        health: dict[str, Any] | None = None,
        sections: dict[str, Any] | None = None,
        regions: int = 1,
        loopback: bool = False,
        cloud_delay_ms: tuple[int, int] = (0, 0),
        cloud_children: int = 4,
        dns: tuple[str, ...] = (),
    ) -> None:
        self.workdir = workdir
        self.dns = dns  # more dnsmasq options for the cloud's DNS (--srv-host=..., --host-record=...)
        self._dnsmasq: subprocess.Popen[bytes] | None = None
        # The first cloud's (round trip, jitter), and its workers: each one sleeps out its request's delay.
        self.cloud_delay_ms, self.cloud_children = cloud_delay_ms, cloud_children
        self.regions = regions  # 2: a second cloud SBC (cloud2, by address) after the first in cloud.sbc
        # loopback: no namespaces (no root), no DNS; the cloud by address, its cut a freeze (gateway.lab.loopback)
        self.loopback = loopback
        self.topology: Topology | LoopbackTopology = LoopbackTopology(tag) if loopback else Topology(tag)
        self.passwords = passwords
        self.health = health or {}
        self.sections = sections or {}  # more config sections for Lifeline ([hardware], say)
        self.hooks_log = workdir / "hooks.jsonl"
        self._procs: list[subprocess.Popen[bytes]] = []
        self.cloud: LabCloud | None = None
        self.cloud2: LabCloud | None = None
        self.lifeline: LifelineProcess | None = None

    @property
    def addr(self) -> Any:
        """The lab's addresses."""
        return self.topology.addr

    def start(self) -> None:
        """Build the network, start the cloud's services, then Lifeline (extensions imported)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        a = self.addr
        self.topology.create(resolver=a.cloud)
        cloud_ns = self.topology.exec_prefix("cl")
        if not self.loopback:
            self.set_dns(self.dns)
        ca = trustme.CA()
        ca_file, cert_file = self.workdir / "ca.pem", self.workdir / "api.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        ca.issue_cert(API_NAME, a.cloud).private_key_and_cert_chain_pem.write_to_path(str(cert_file))
        # Port 443 needs root outside a namespace of our own.
        api_port = free_port(a.cloud) if self.loopback else 443
        api = f"{a.cloud}:{api_port}" if self.loopback else API_NAME
        self._spawn(
            [
                *cloud_ns, sys.executable, "-m", "gateway.lab.cloud_api", "--host", a.cloud, "--port", str(api_port),
                "--cert", str(cert_file), "--key", str(cert_file), "--log", str(self.hooks_log),
            ],
            "cloud_api.log",
        )  # fmt: skip
        if isinstance(self.topology, LoopbackTopology):
            api_proc = self._procs[-1]
            self.topology.silencers.append(
                (lambda: api_proc.send_signal(signal.SIGSTOP), lambda: api_proc.send_signal(signal.SIGCONT))
            )
        self.cloud = LabCloud(
            self.workdir / "cloud",
            host=a.cloud,
            port=5060,
            realm=REALM,
            prefix=tuple(cloud_ns),
            delay_ms=self.cloud_delay_ms,
            children=self.cloud_children,
        )
        extensions = [
            Extension.from_password(number=n, auth_user=n, realm=REALM, password=p) for n, p in self.passwords.items()
        ]
        self.cloud.add_subscribers(extensions)
        self.cloud.start()
        if isinstance(self.topology, LoopbackTopology):
            self.topology.silencers.append((self.cloud.pause, self.cloud.resume))
        sbc: list[str] = [f"sip:{a.cloud if self.loopback else SBC_NAME}:5060"]
        if self.regions == 2:
            self.cloud2 = LabCloud(
                self.workdir / "cloud2", host=a.cloud2, port=5060, realm=REALM, prefix=tuple(cloud_ns)
            )
            self.cloud2.add_subscribers(extensions)
            self.cloud2.start()
            sbc.append(f"sip:{a.cloud2}:5060")
        secret = self.workdir / "webhook.secret"
        secret.write_text("whsec_" + "bGlmZWxpbmUtbGFiLXdlYmhvb2stc2VjcmV0IQ==\n")
        secret.chmod(0o600)
        csv = self.workdir / "extensions.csv"
        csv.write_text("number,password\n" + "".join(f"{n},{p}\n" for n, p in self.passwords.items()))
        self.lifeline = LifelineProcess(
            self.workdir / "lifeline",
            {
                "sip": {"listen": a.branch_lan, "port": 5060, "transports": ["udp"], "children": 2},
                "cloud": {"sbc": sbc if len(sbc) > 1 else sbc[0], "realm": REALM},
                "health": {
                    "api_url": f"https://{api}/",
                    "api_ca_file": str(ca_file),
                    # On loopback the default route's router is the host's real one: not the lab's to probe.
                    "lan_target": "off" if self.loopback else "gateway",
                    "other_interval_s": 1.0,
                    **self.health,
                },
                "alerts": {
                    "webhook_url": f"https://{api}/hooks/lifeline",
                    "webhook_secret_file": str(secret),
                    "webhook_ca_file": str(ca_file),
                    "retry_max_s": 2,
                },
                **self.sections,
            },
            prefix=tuple(self.topology.exec_prefix("br")),
        )
        self.lifeline.cli("extensions", "import", str(csv))
        self.lifeline.start()

    def set_dns(self, options: tuple[str, ...]) -> None:
        """(Re)start the cloud's DNS server with these extra options (dnsmasq reads SRV records only at start)."""
        a = self.addr
        if self._dnsmasq is not None:
            self._dnsmasq.kill()
            self._dnsmasq.wait()
            self._procs.remove(self._dnsmasq)
        self.dns = options
        # --local: a name under cloud.test it has no record of gets a real negative answer, not REFUSED.
        self._spawn(
            [
                *self.topology.exec_prefix("cl"), "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
                "--conf-file=/dev/null", f"--listen-address={a.cloud}", "--bind-interfaces",
                "--address=/cloud.test/" + a.cloud, "--local=/cloud.test/", "--local-ttl=300", "--user=root",
                f"--pid-file={self.workdir / 'dnsmasq.pid'}", *options,
            ],
            "dnsmasq.log",
        )  # fmt: skip
        self._dnsmasq = self._procs[-1]
        # Serving once it answers a query of its own records (it binds within milliseconds).
        deadline = time.monotonic() + 10
        while self.topology.run("br", "getent", "hosts", "x.cloud.test", check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("the lab's dnsmasq did not start: see dnsmasq.log")
            time.sleep(0.05)

    def _spawn(self, cmd: list[str], log_name: str) -> None:
        with (self.workdir / log_name).open("ab") as log:
            self._procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))

    def phone(self, ep: SipEndpoint, user: str) -> Phone:
        """A phone on the branch LAN, registering to the cloud with Lifeline as outbound proxy (not yet registered).

        Its sockets open in the calling thread's namespace: call it from inside the phones' one.
        """
        a = self.addr
        return ep.phone(
            user,
            self.passwords[user],
            domain=a.cloud,
            registrar=f"sip:{a.cloud}:5060",
            proxy=f"sip:{a.branch_lan}:5060;lr",
            host=a.phone,
        )

    def status(self) -> dict[str, Any]:
        """Lifeline's status."""
        assert self.lifeline is not None
        return self.lifeline.status()

    def mode_events(self) -> list[dict[str, Any]]:
        """Mode changes, oldest first (the status lists the newest ten; the store has them all)."""
        assert self.lifeline is not None
        with contextlib.closing(sqlite3.connect(self.lifeline.workdir / "data" / "lifeline.db")) as db:
            events = events_since(db, ("mode",), since=0.0)
        return [{"ts": e["ts"], "message": e["message"], **e["data"]} for e in events]

    def wait_mode(self, mode: str, timeout: float) -> float:
        """Wait until Lifeline's mode is `mode`; returns when (monotonic) it was seen."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.status()["mode"]["mode"] == mode:
                return time.monotonic()
            time.sleep(0.05)
        raise AssertionError(f"mode did not become {mode} within {timeout:.0f} s: {self.status()['mode']}")

    def hooks(self) -> list[dict[str, Any]]:
        """Webhook requests the cloud API received."""
        if not self.hooks_log.exists():
            return []
        return [json.loads(line) for line in self.hooks_log.read_text().splitlines() if line.strip()]

    def close(self) -> None:
        """Stop everything and remove the namespaces."""
        if isinstance(self.topology, LoopbackTopology):
            self.topology.close()  # a frozen cloud thawed first, so that it can stop
        if self.lifeline is not None:
            self.lifeline.stop()
        if self.cloud is not None:
            self.cloud.stop()
        if self.cloud2 is not None:
            self.cloud2.stop()
        for proc in self._procs:
            proc.kill()
            proc.wait()
        self.topology.close()
