"""Per-address TCP connection limits: the rendered nftables ruleset, and the kernel enforcing it.

The kernel tests load the ruleset into a network namespace of their own (root, as CI has) and never
touch the host's ruleset.
"""

from __future__ import annotations

import secrets
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.cli.main import main
from gateway.config import parse
from gateway.lab.netns import inside, remove_netns
from gateway.sip.firewall import LOG_PREFIX, Listener, listeners, ruleset, unknown

PRODUCTION = {"sip": {"listen": "0.0.0.0", "port": 5060}}  # what install.sh's `config init` writes
V6_SERVER, V6_OTHER = "fd00:11fe::1", "fd00:11fe::2"


def rendered(data: dict[str, Any], **ports: int) -> str:
    config = parse(data)
    return ruleset(config, listeners(config, **ports))


# --- the ruleset as text


def test_production_config_limits_sip_tcp_and_the_api() -> None:
    config = parse(PRODUCTION)
    assert listeners(config) == (Listener("sip-tcp", 5060), Listener("api", 8443))
    text = ruleset(config, listeners(config))
    assert "tcp dport { 5060, 8443 } ct state new add @tcp4 { ip saddr ct count over 32 } jump over_limit" in text
    assert "tcp dport { 5060, 8443 } ct state new add @tcp6 { ip6 saddr ct count over 32 } jump over_limit" in text
    assert "type ipv6_addr" in text and "type ipv4_addr" in text
    assert f'log prefix "{LOG_PREFIX}"' in text and "reject with tcp reset" in text
    # Replaced whole, in one batch, and nothing but Lifeline's own table is named.
    assert text.index("table inet lifeline\ndelete table inet lifeline\n") < text.index("table inet lifeline {")
    tables = {line.split("{")[0].strip() for line in text.splitlines() if line.startswith(("table", "delete"))}
    assert tables == {"table inet lifeline", "delete table inet lifeline"}


def test_ports_follow_the_transports_the_api_and_the_limit() -> None:
    text = rendered({"sip": {"port": 5070, "transports": ["udp", "tcp", "tls"], "tls_port": 5071, "tcp_per_source": 7}})
    assert "tcp dport { 5070, 5071, 8443 }" in text and "ct count over 7 }" in text
    text = rendered({"sip": {"port": 5070, "transports": ["tls"]}, "api": {"enabled": False}})
    assert "tcp dport { 5061 }" in text
    udp_only = rendered({"sip": {"port": 5060, "transports": ["udp"]}, "api": {"enabled": False}})
    assert "tcp dport" not in udp_only and "chain input {" in udp_only  # an old table is still replaced


def test_a_pair_limits_its_replication_port_too() -> None:
    pair = {
        "enabled": True,
        "peer": "192.0.2.2",
        "virtual_ip": "192.0.2.10/24",
        "key_file": "/etc/lifeline/pair.key",
        "dmq_port": 5091,
    }
    config = parse({"sip": {"port": 5060}, "api": {"port": 8443}, "ha": pair})
    assert Listener("ha-dmq", 5091) in listeners(config)
    assert "tcp dport { 5060, 5091, 8443 }" in ruleset(config, listeners(config))


def test_a_free_port_needs_the_bound_one() -> None:
    config = parse({"sip": {"port": 0}, "api": {"port": 0}})
    assert unknown(listeners(config)) == (Listener("sip-tcp", 0), Listener("api", 0))
    text = ruleset(config, listeners(config))
    assert "tcp dport" not in text and "# Not limited: sip-tcp has port 0" in text
    assert "tcp dport { 5099, 8999 }" in ruleset(config, listeners(config, sip_port=5099, api_port=8999))


def test_cli_prints_the_ruleset_without_privileges(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "lifeline.toml"
    # The production config as install.sh has it written.
    args = ["config", "init", "--sip-listen", "0.0.0.0", "--sip-port", "5060", "-o", str(conf)]
    assert main(args) == 0
    capsys.readouterr()
    assert main(["firewall", "--config", str(conf)]) == 0
    assert capsys.readouterr().out == rendered(PRODUCTION)
    assert main(["--config", str(conf), "firewall"]) == 0
    assert "tcp dport { 5060, 8443 }" in capsys.readouterr().out


def test_apply_refuses_without_root() -> None:
    # The real command as an unprivileged user (nobody): a clear word, not nft's own error.
    command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", sys.executable, "-m", "gateway"]
    done = subprocess.run(
        [*command, "firewall", "--apply"], capture_output=True, text=True, timeout=60, cwd="/", env={"PATH": "/usr/bin"}
    )
    assert done.returncode != 0
    assert "needs root" in done.stderr, done.stderr


def test_the_service_applies_it_as_root_and_removes_it() -> None:
    unit = (Path(__file__).resolve().parents[2] / "firmware/systemd/lifeline.service").read_text().splitlines()
    (start,) = [line.removeprefix("ExecStart=") for line in unit if line.startswith("ExecStart=")]
    daemon = start.removesuffix(" run")  # the same venv and config as the daemon's own
    assert f"ExecStartPre=-+{daemon} firewall --apply" in unit
    assert "ExecStopPost=-+/usr/sbin/nft delete table inet lifeline" in unit


# --- in the kernel, inside a namespace of the test's own


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh network namespace with lo up (and two IPv6 addresses on it); removed afterwards."""
    name = f"lifeline-fwtest-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, timeout=30)
    try:
        ip = ["ip", "-n", name]
        subprocess.run([*ip, "link", "set", "lo", "up"], check=True, capture_output=True, timeout=30)
        for address in (V6_SERVER, V6_OTHER):
            add = [*ip, "addr", "add", f"{address}/128", "dev", "lo", "nodad"]
            subprocess.run(add, check=True, capture_output=True, timeout=30)
        yield name
    finally:
        remove_netns([name])


def nft(ns: str, *args: str, script: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", ns, "nft", *args], input=script, capture_output=True, text=True, timeout=30
    )


def apply_in(ns: str, tmp_path: Path, sections: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """`lifeline firewall --apply` itself, run inside the namespace."""
    conf = tmp_path / "fw.toml"
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {value!r}".replace("'", '"') for key, value in values.items()]
    conf.write_text("\n".join(lines) + "\n")
    command = ["ip", "netns", "exec", ns, sys.executable, "-m", "gateway", "--config", str(conf), "firewall", "--apply"]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "data",
    [
        PRODUCTION,
        {"sip": {"port": 5060, "transports": ["udp", "tcp", "tls"], "tcp_per_source": 10000}},
        {"sip": {"port": 5060, "transports": ["udp"]}, "api": {"enabled": False}},
        {"sip": {"port": 0}},
    ],
    ids=["production", "tls", "no-tcp", "free-port"],
)
def test_nft_accepts_the_ruleset(netns: str, data: dict[str, Any]) -> None:
    check = nft(netns, "-c", "-f", "-", script=rendered(data))
    assert check.returncode == 0, check.stderr


def test_apply_replaces_only_its_own_table(netns: str, tmp_path: Path) -> None:
    other = "table inet other {\n\tchain input {\n\t\ttype filter hook input priority 10; policy accept;\n\t}\n}\n"
    assert nft(netns, "-f", "-", script=other).returncode == 0
    first = apply_in(netns, tmp_path, {"sip": {"port": 5060, "tcp_per_source": 5}})
    assert first.returncode == 0, first.stderr
    assert "loaded: at most 5 TCP connections per address (sip-tcp 5060, api 8443)" in first.stdout
    again = apply_in(netns, tmp_path, {"sip": {"port": 5062, "tcp_per_source": 9}})  # over the loaded one
    assert again.returncode == 0, again.stderr
    listed = nft(netns, "list", "table", "inet", "lifeline").stdout
    assert "tcp dport { 5062, 8443 }" in listed and "ct count over 9" in listed and "5060" not in listed
    assert nft(netns, "list", "tables").stdout.split("\n")[:2] == ["table inet other", "table inet lifeline"]
    # What lifeline.service's ExecStopPost runs.
    assert nft(netns, "delete", "table", "inet", "lifeline").returncode == 0
    assert nft(netns, "list", "tables").stdout.strip() == "table inet other"


class EchoServer:
    """TCP listeners inside the namespace, served by a thread: echo each byte, close when the peer does."""

    def __init__(self, ns: str, addresses: list[tuple[int, str]], port: int) -> None:
        self.ns = ns
        with inside(ns):
            self.listeners = [socket.create_server((host, port), family=fam, backlog=64) for fam, host in addresses]
        self.selector = selectors.DefaultSelector()
        for sock in self.listeners:
            self.selector.register(sock, selectors.EVENT_READ)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            for key, _ in self.selector.select(0.1):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                if sock in self.listeners:
                    conn, _ = sock.accept()
                    self.selector.register(conn, selectors.EVENT_READ)
                    continue
                try:
                    data = sock.recv(100)
                except OSError:
                    data = b""
                if data:
                    sock.sendall(data)
                else:
                    self.selector.unregister(sock)
                    sock.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self.selector.close()

    def connect(self, family: int, source: str, server: str, port: int) -> socket.socket:
        """A connection from source that the server has answered (echo), or the error connecting."""
        with inside(self.ns):
            sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(5)
        try:
            sock.bind((source, 0))
            sock.connect((server, port))
            sock.sendall(b"x")
            assert sock.recv(1) == b"x"
        except BaseException:
            sock.close()
            raise
        return sock

    def connect_soon(self, family: int, source: str, server: str, port: int) -> socket.socket:
        """connect(), retried for a moment: closed connections leave the count as the kernel sees them close."""
        deadline = time.monotonic() + 5
        while True:
            try:
                return self.connect(family, source, server, port)
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


@pytest.mark.parametrize(
    ("family", "server", "other"),
    [(socket.AF_INET, "127.0.0.1", "127.0.0.2"), (socket.AF_INET6, V6_SERVER, V6_OTHER)],
    ids=["ipv4", "ipv6"],
)
def test_kernel_resets_connections_over_the_per_address_limit(
    netns: str, tmp_path: Path, family: int, server: str, other: str
) -> None:
    limit, port = 5, 5060
    done = apply_in(netns, tmp_path, {"sip": {"listen": "127.0.0.1", "port": port, "tcp_per_source": limit}})
    assert done.returncode == 0, done.stderr
    echo = EchoServer(netns, [(family, server)], port)
    opened: list[socket.socket] = []
    try:
        opened += [echo.connect(family, server, server, port) for _ in range(limit)]  # all accepted, held open
        with pytest.raises(ConnectionRefusedError):  # the reset
            echo.connect(family, server, server, port)
        opened.append(echo.connect(family, other, server, port))  # another address is not affected
        for sock in opened[:limit]:
            sock.close()
        del opened[:limit]
        opened.append(echo.connect_soon(family, server, server, port))  # closed ones no longer count
        opened += [echo.connect(family, server, server, port) for _ in range(limit - 1)]
        with pytest.raises(ConnectionRefusedError):
            echo.connect(family, server, server, port)
        # Only the listed ports: the same address still reaches any other port.
        other_port = EchoServer(netns, [(family, server)], port + 1)
        try:
            other_port.connect(family, server, server, port + 1).close()
        finally:
            other_port.close()
    finally:
        for sock in opened:
            sock.close()
        echo.close()
