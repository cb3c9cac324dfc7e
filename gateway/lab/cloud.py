"""A simulated cloud PBX edge (a real Kamailio registrar) for tests, benchmarks and the lab."""

from __future__ import annotations

import os
import secrets
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from gateway.errors import RpcError, SipError
from gateway.mirror.records import Extension
from gateway.sip.render import KamailioTemplate, find_module_path, free_port, kamailio_command
from gateway.sip.rpc import KamailioRpc


class LabCloud:
    """A Kamailio playing the cloud registrar on host:port, with its own subscriber table."""

    def __init__(
        self,
        workdir: Path,
        *,
        host: str = "127.0.0.2",
        port: int = 5060,
        realm: str = "asterisk",
        children: int = 4,
        debug: int = 1,
        prefix: tuple[str, ...] = (),
        delay_ms: tuple[int, int] = (0, 0),
        tls: tuple[Path, Path] | None = None,
        advertise: str | None = None,
    ) -> None:
        self.workdir = workdir
        # "name:port" the cloud puts in its Record-Route instead of its address, as many SBCs do.
        self.advertise = advertise
        # (certificate chain, private key) PEM files: the cloud also listens for TLS on tls_port.
        self.tls = tls
        self.tls_port = free_port(host) if tls is not None else 0
        self.tls_cfg_path = workdir / "cloud-tls.cfg"
        # (round trip, jitter) a far-away cloud adds: each request it gets, and each answer it relays, is
        # handled that late, the jitter drawn anew for each (no netem here).
        self.delay_ms = delay_ms
        self.host, self.port, self.realm = host, port, realm
        self.children, self.debug = children, debug
        self.prefix = prefix  # e.g. ("ip", "netns", "exec", NAME) to run inside a namespace
        self.db_path = workdir / "cloud.db"
        self.cfg_path = workdir / "cloud.cfg"
        self.log_path = workdir / "cloud.log"
        self.rpc = KamailioRpc(workdir / "cloud-rpc.sock")
        self._proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(self.db_path) as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS subscriber (id INTEGER PRIMARY KEY, username TEXT NOT NULL,"
                " domain TEXT NOT NULL, ha1 TEXT NOT NULL, ha1b TEXT NOT NULL DEFAULT '',"
                " UNIQUE(username, domain))"
            )

    @property
    def uri(self) -> str:
        """The SIP URI phones and Lifeline send to."""
        return f"sip:{self.host}:{self.port}"

    @property
    def tls_uri(self) -> str:
        """The SIP URI of the TLS listener (a certificate for the IP address: no name resolves to it)."""
        assert self.tls is not None, "a lab cloud made without tls"
        return f"sip:{self.host}:{self.tls_port};transport=tls"

    def add_subscribers(self, extensions: Iterable[Extension]) -> None:
        """Provision these extensions' HA1 in the cloud's own table."""
        with sqlite3.connect(self.db_path) as db:
            db.executemany(
                "INSERT OR REPLACE INTO subscriber (username, domain, ha1) VALUES (?, ?, ?)",
                [(e.auth_user, e.realm, e.ha1) for e in extensions],
            )

    def start(self, timeout: float = 15.0) -> None:
        """Start the cloud and wait until it answers RPC."""
        template = KamailioTemplate(resources.files("gateway.lab").joinpath("cloud.cfg.tmpl").read_text())
        self.cfg_path.write_text(
            template.substitute(
                realm=self.realm,
                debug=self.debug,
                children=self.children,
                host=self.host,
                port=self.port,
                module_path=find_module_path(None),
                rpc_socket=self.rpc.server,
                db_path=self.db_path,
                nonce_secret=secrets.token_hex(16),
                delay_defines=self._delay_defines(),
                tls_section=self._tls_section(),
                alias=f"alias={self.advertise}" if self.advertise else "",
                advertise_define=f'#!define RR_NAME "{self.advertise}"' if self.advertise else "",
            )
        )
        if self.rpc.server.exists():
            self.rpc.server.unlink()
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [*self.prefix, *kamailio_command("kamailio", self.cfg_path, self.workdir)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            try:
                self.rpc.call_blocking("core.version")
                return
            except RpcError:
                time.sleep(0.1)
        self.stop()
        raise SipError(f"lab cloud did not start; see {self.log_path}:\n{self.log_path.read_text()[-2000:]}")

    def _tls_section(self) -> str:
        if self.tls is None:
            return ""
        certificate, key = self.tls
        # The cloud needs no client certificate, and reaches Lifeline's own TLS listener unchecked.
        self.tls_cfg_path.write_text(
            f"[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n"
            f"certificate = {certificate}\nprivate_key = {key}\n\n"
            "[client:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n"
        )
        return (
            f"enable_tls=yes\nlisten=tls:{self.host}:{self.tls_port}\n"
            f'loadmodule "tls.so"\nmodparam("tls", "config", "{self.tls_cfg_path}")'
        )

    def _delay_defines(self) -> str:
        rtt, jitter = self.delay_ms
        if rtt <= 0:
            return ""
        return f"#!define DELAY_US {rtt * 1000}\n#!define JITTER_US {min(jitter, rtt) * 1000}"

    def pause(self) -> None:
        """Freeze every cloud process: it stops answering, as a hung or cut-off cloud does."""
        assert self._proc is not None
        os.killpg(self._proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused cloud answer again."""
        assert self._proc is not None
        os.killpg(self._proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        """Stop the cloud (resuming it first if it was paused)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGCONT)
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def transactions(self) -> int:
        """Transactions the cloud handled statefully (its tm counters: INVITEs and their BYEs in the tests)."""
        stats: Any = self.rpc.call_blocking("tm.stats")
        return int(stats["total"])

    def bindings(self) -> dict[str, list[str]]:
        """The cloud's registered AORs and their contacts."""
        dump: Any = self.rpc.call_blocking("ul.dump")
        result: dict[str, list[str]] = {}
        for domain in dump.get("Domains", []):
            for entry in domain["Domain"].get("AoRs", []):
                info = entry["Info"]
                result[info["AoR"]] = [c["Contact"]["Address"] for c in info.get("Contacts", [])]
        return result
