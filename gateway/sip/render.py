"""Render Kamailio's configuration from the template in this package."""

from __future__ import annotations

import glob
import ipaddress
import os
import re
import secrets
import socket
import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from gateway.config import SIP_URI, Config
from gateway.errors import SipError
from gateway.ha.kamailio import virtual_listen
from gateway.ha.key import read_key, route_key
from gateway.numbering import emergency_pattern
from gateway.sip.dmq import dmq_key, pair_fragments
from gateway.sip.options import SipTarget
from gateway.sip.pair_trunk import trunk_key, with_trunk
from gateway.sip.tls import TlsFiles, cloud_server_name

MODULE_DIRS = (
    "/usr/lib/*/kamailio/modules",
    "/usr/lib/kamailio/modules",
    "/usr/local/lib*/kamailio/modules",
)


class KamailioTemplate(string.Template):
    """`%%name` placeholders: `$` belongs to Kamailio's own pseudo-variables."""

    delimiter = "%%"


@dataclass(frozen=True)
class EdgeKeys:
    """Secrets only Kamailio and Lifeline's own parts know (never logged)."""

    caller: str  # signs the caller stamp for the trunk agent; new on every daemon start
    route: str  # signs our Record-Route; kept across restarts so calls outlive one
    pair_trunk: str = ""  # [ha]: signs trunk calls sent to the peer box (gateway.sip.pair_trunk); "" off
    pair_dmq: str = ""  # [ha]: signs KDMQ, the pair's replication (gateway.sip.dmq); "" off


@dataclass(frozen=True)
class RenderInputs:
    """What the rendered config depends on beyond the validated config."""

    port: int
    rpc_socket: Path
    db_path: Path
    survival: bool
    module_path: str
    cloud_host_ip: str | None
    keys: EdgeKeys
    tls: TlsInputs | None = None  # required when sip.transports has tls
    cloud_timers: tuple[int, int] | None = None  # (wait, T1) ms for the cloud's INVITE; None: the configured wait
    cloud_port: int = 0  # Lifeline's own socket towards the cloud (cloud.local_port); 0: the phones' socket
    standby_ips: tuple[str, ...] = ()  # the addresses of cloud.standby's SBCs, in order

    @property
    def dispatcher_path(self) -> Path:
        """Kamailio's dispatcher list (the cloud's SBCs), next to its RPC socket."""
        return self.rpc_socket.with_name("kamailio-dispatcher.list")


@dataclass(frozen=True)
class TlsInputs:
    """Where the TLS listener is and what it serves."""

    port: int
    files: TlsFiles
    config_path: Path  # the tls module's own config (gateway.sip.tls.tls_config)


ROUTE_KEY_FILE = "sip-route.key"


def edge_keys(data_dir: Path, pair_key_file: Path | None = None) -> EdgeKeys:
    """A fresh caller key, and the route key: the pair's ([ha] key_file), else the data dir's (made once, 0600)."""
    if pair_key_file is not None:
        # Both boxes of a pair sign alike: a call set up through one can be ended through the other.
        pair_key = read_key(pair_key_file)
        return EdgeKeys(secrets.token_hex(32), route_key(pair_key), trunk_key(pair_key), dmq_key(pair_key))
    path = data_dir / ROUTE_KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        try:
            route = path.read_text().strip()
        except OSError as err:
            raise SipError(f"{path}: cannot read the route key: {err.strerror}") from err
    except OSError as err:
        raise SipError(f"{path}: cannot create the route key: {err.strerror}") from err
    else:
        route = secrets.token_hex(32)
        with os.fdopen(fd, "w") as out:
            out.write(route + "\n")
    if not re.fullmatch(r"[0-9a-f]{64}", route):
        raise SipError(f"{path}: not a route key (delete it and Lifeline makes a new one)")
    return EdgeKeys(caller=secrets.token_hex(32), route=route)


def find_module_path(configured: str | None) -> str:
    """Kamailio's module directory: configured, or where the Debian package puts it."""
    candidates = [configured] if configured else [p for pat in MODULE_DIRS for p in sorted(glob.glob(pat))]
    for candidate in candidates:
        if candidate and Path(candidate, "tm.so").exists():
            return candidate
    raise SipError(
        "sip.module_path: no Kamailio module directory with tm.so found"
        + (f" at {configured!r}" if configured else " (is the kamailio package installed?)")
    )


def resolve_cloud_host(sbc: str | None) -> str | None:
    """The IP address the cloud SBC's requests come from (blocking DNS; call off the loop)."""
    if sbc is None:
        return None
    match = SIP_URI.match(sbc)
    if match is None:  # config validation already refused this
        raise SipError(f"cloud.sbc = {sbc!r}: not a SIP URI")
    host = match["host"].strip("[]")
    try:
        return str(socket.getaddrinfo(host, None, proto=socket.IPPROTO_UDP)[0][4][0])
    except OSError as err:
        raise SipError(f"cloud.sbc = {sbc!r}: cannot resolve {host!r}: {err}") from err


def _socket(proto: str, host: str, port: int) -> str:
    """Kamailio's name of a listening socket (proto:host:port, an IPv6 host in brackets)."""
    return f"{proto}:[{host}]:{port}" if ":" in host else f"{proto}:{host}:{port}"


def cloud_destinations(config: Config, inputs: RenderInputs) -> list[str]:
    """The cloud's SBCs as Kamailio's dispatcher knows them (each name replaced by its address), in order."""
    if inputs.cloud_host_ip is None:
        return []
    addresses = (inputs.cloud_host_ip, *inputs.standby_ips)
    return [_with_host(uri, address) for uri, address in zip(config.cloud.sbcs, addresses, strict=True)]


def render_dispatcher(config: Config, inputs: RenderInputs) -> str:
    """Kamailio's dispatcher list: set 1, the SBCs by falling priority (algorithm 8 takes the first active)."""
    destinations = cloud_destinations(config, inputs)
    # "setid destination flags priority": the first SBC has the highest priority.
    rows = [f"1 {uri} 0 {len(destinations) - index}" for index, uri in enumerate(destinations)]
    return "".join(row + "\n" for row in rows)


def _cloud_defines(config: Config, inputs: RenderInputs, sbc: str, address: str) -> tuple[str, str]:
    """The cloud's defines, and the listen line of Lifeline's own socket towards it ("" if none)."""
    target = SipTarget.from_uri(sbc)
    sip = config.sip
    tls_port = inputs.tls.port if inputs.tls is not None else 0
    first = sip.transports[0]
    phone_sock = _socket(first, sip.listen, tls_port if first == "tls" else inputs.port)
    # Every request to the cloud leaves from this socket, so Via, Path and Record-Route send the cloud's
    # requests back to it: the socket a request arrives on says which side it is from (route[FROM_CLOUD]).
    local_port = inputs.cloud_port or (tls_port if target.transport == "tls" else inputs.port)
    listen = f"\nlisten={_socket(target.transport, sip.listen, local_port)}" if inputs.cloud_port else ""
    defines = [
        "#!define WITH_CLOUD",
        f'#!define CLOUD_URI "{_with_host(sbc, address)}"',
        f'#!define CLOUD_LIST "{inputs.dispatcher_path}"',
        f'#!define CLOUD_HOSTS "{_hosts_pattern(config, inputs)}"',
        f"#!define CLOUD_LOCAL_PORT {local_port}",
        f'#!define CLOUD_SOCK "{_socket(target.transport, sip.listen, local_port)}"',
        f'#!define PHONE_SOCK "{phone_sock}"',
    ]
    if config.cloud.standby:
        defines.append("#!define WITH_STANDBY")
    if any(own_address(a) for a in (address, *inputs.standby_ips) if a):
        # An SBC on one of this box's own addresses: over TCP its address alone would also admit any
        # local program that connects to the cloud socket, so its port must match too (route[FROM_CLOUD]).
        defines.append("#!define CLOUD_SHARES_HOST")
    return "\n".join(defines), listen


def own_address(address: str) -> bool:
    """Whether this machine has the address (loopback included): it can bind a socket to it."""
    try:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((address, 0))
    except OSError:
        return False
    return True


def _hosts_pattern(config: Config, inputs: RenderInputs) -> str:
    """A regular expression for "host:port" of any SBC, by name or address (route[DLG_NEXT])."""
    pairs = set()
    for uri, address in zip(config.cloud.sbcs, (inputs.cloud_host_ip, *inputs.standby_ips), strict=False):
        target = SipTarget.from_uri(uri)
        for host in (target.host, address or target.host):
            pairs.add(_literal(f"[{host}]" if ":" in host else host) + f":{target.port}")
    return "^(" + "|".join(sorted(pairs)) + ")$"


def _name_routes(config: Config, inputs: RenderInputs) -> str:
    """route[CLOUD_BY_ADDRESS]'s lines: a next hop naming an SBC goes to the address the daemon resolved."""
    lines = []
    for uri, address in zip(config.cloud.sbcs, (inputs.cloud_host_ip, *inputs.standby_ips), strict=False):
        target = SipTarget.from_uri(uri)
        if address is None or _is_address(target.host):
            continue
        host = f"[{address}]" if ":" in address else address
        lines.append(
            f'\tif ($(var(nh_host){{s.tolower}}) == "{target.host.lower()}" && $var(cloud_port) == {target.port})'
            f' $du = "sip:{host}:{target.port};transport={target.transport}";'
        )
    return "\n".join(lines)


def _is_address(host: str) -> bool:
    """Whether the host is an IP address rather than a name."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _literal(host: str) -> str:
    """A host name or address as a POSIX regex, without backslashes (Kamailio's strings treat them as escapes)."""
    return "".join(f"[{char}]" if char in ".[]" else char for char in host)


def _with_host(uri: str, address: str) -> str:
    """The SIP URI with its host replaced by the address it resolved to: Kamailio never resolves a name."""
    match = SIP_URI.match(uri)
    if match is None:  # config validation already refused this
        raise SipError(f"cloud.sbc = {uri!r}: not a SIP URI")
    host = f"[{address}]" if ":" in address else address
    return uri[: match.start("host")] + host + uri[match.end("host") :]


def render(config: Config, inputs: RenderInputs) -> str:
    """The complete kamailio.cfg text for this config and mode."""
    template = KamailioTemplate(resources.files("gateway.sip").joinpath("kamailio.cfg.tmpl").read_text())
    sip = config.sip
    if "tls" in sip.transports and inputs.tls is None:
        raise SipError("sip.transports has tls but no TLS port and certificate were given")
    tls_port = inputs.tls.port if inputs.tls is not None else 0
    listen = "\n".join(
        f"listen={proto}:{sip.listen}:{tls_port if proto == 'tls' else inputs.port}" for proto in sip.transports
    )
    tls = ""
    if "tls" in sip.transports and inputs.tls is not None:
        tls = f'#!define WITH_TLS\n#!define TLS_CONFIG "{inputs.tls.config_path}"'
    cloud = ""
    if config.cloud.sbc is not None and inputs.cloud_host_ip is not None:
        cloud, cloud_listen = _cloud_defines(config, inputs, config.cloud.sbc, inputs.cloud_host_ip)
        listen += cloud_listen
        server_name = cloud_server_name(config)
        if tls and server_name is not None:
            # SNI on the connection to the cloud: the tls module sends none of its own (route[TO_CLOUD]).
            cloud += f'\n#!define CLOUD_SNI "{server_name}"'
    name_routes = _name_routes(config, inputs) if cloud else ""
    listen = virtual_listen(config, listen)  # [ha]: the shared address too (not the DMQ socket below)
    pair_listen, pair = pair_fragments(config, inputs.keys.pair_dmq)  # all empty without [ha]
    listen += pair_listen
    first = sip.transports[0]  # the trunk across the pair ([ha]): its agent registers on the phones' first socket
    pair = with_trunk(pair, config, first, tls_port if first == "tls" else inputs.port, inputs.keys.pair_trunk)
    if config.mirror.learned:
        cloud += "\n#!define WITH_LEARNED"
    survival_expires = config.survival.register_expires
    # Emergency calls while NORMAL (emergency.normal); "cloud" needs no define: they go as any call.
    emergency = {
        "cloud": "",
        "trunk": "#!define EMERGENCY_TRUNK",
        "cloud-then-trunk": f"#!define EMERGENCY_CLOUD_MS {config.emergency.cloud_timeout_ms}",
    }[config.emergency.normal]
    wait_ms, t1_ms = inputs.cloud_timers or (config.fallback.invite_timeout_ms, 500)
    return template.substitute(
        cloud_defines=cloud,
        cloud_name_routes=name_routes,
        tls_defines=tls,
        realm=config.cloud.realm,
        cloud_wait_ms=wait_ms,
        cloud_t1_ms=t1_ms,
        auth_column="ha1_sha256" if sip.auth_algorithm == "SHA-256" else "ha1",
        algorithm=sip.auth_algorithm,
        debug=sip.debug,
        children=sip.children,
        tcp_children=sip.children if {"tcp", "tls"} & set(sip.transports) else 1,
        listen_lines=listen,
        module_path=inputs.module_path,
        rpc_socket=str(inputs.rpc_socket),
        # The trunk agent's extension: static config, so rendered (a restarted Kamailio has it at once).
        trunk_extension=(config.trunk.extension or "") if config.trunk.modems else "",
        rpc_fifo=str(inputs.rpc_socket.with_suffix(".fifo")),  # KamailioRpc.fifo
        rpc_reply_dir=str(inputs.rpc_socket.parent),
        survival=1 if inputs.survival else 0,
        max_expires=config.survival.normal_max_expires,
        survival_expires=survival_expires,
        db_path=str(inputs.db_path),
        # The same list the trunk's dial plan and the call records use (TrunkConfig.emergency_list).
        emergency_pattern=emergency_pattern(config.trunk.emergency_list),
        emergency_defines=emergency,
        # Long enough for both halves (expiry and the extra nonce checks each take one).
        nonce_secret=secrets.token_hex(32),
        caller_key=inputs.keys.caller,
        route_key=inputs.keys.route,
        ban_after=sip.ban_after_failures,
        failure_window_s=sip.failure_window_s,
        ban_s=sip.ban_s,
        ban_max_s=sip.ban_max_s,
        flood_limit=sip.flood_limit,
        max_contacts=sip.max_contacts,
        max_message_bytes=sip.max_message_bytes,
        tcp_max_connections=sip.tcp_max_connections,
        tcp_idle_s=sip.tcp_idle_s,
        # An authenticated connection lives as long as the longest binding may, in either mode.
        tcp_registered_s=max(config.survival.register_expires, config.survival.normal_max_expires) + 60,
        **pair,
    )


def kamailio_command(binary: str, cfg: Path, run_dir: Path, shm_mb: int = 64) -> list[str]:
    """Kamailio in the foreground, logging to stderr, with Lifeline's memory sizes."""
    # -DD: no daemonising, so the supervisor owns the main process; -m/-M: shared and private
    # memory in MB, enough for thousands of bindings on a Pi. -x/-X fm: Debian's build defaults to qm,
    # the debugging allocator, whose search grows with every block: loading the CA bundle for the
    # cloud's TLS took 19-24 s on a busy 2-core machine (15 s is the start limit), fm 2.8 s. Not tlsf:
    # with it Kamailio 5.6.3 dumped core in the allocator in every pair test run (DMQ, forwarded calls).
    shm, pkg = str(shm_mb), "8"
    return [binary, "-DD", "-E", "-f", str(cfg), "-m", shm, "-M", pkg, "-x", "fm", "-X", "fm", "-Y", str(run_dir)]


def port_free(host: str, port: int) -> bool:
    """Whether port is free for both UDP and TCP on host."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as udp, socket.socket(family, socket.SOCK_STREAM) as tcp:
            udp.bind((host, port))
            tcp.bind((host, port))
    except OSError:
        return False
    return True


def free_port(host: str) -> int:
    """A port free for both UDP and TCP on host (the kernel picks; we check both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
                return port
    raise SipError(f"sip.port: no free port found on {host}")
