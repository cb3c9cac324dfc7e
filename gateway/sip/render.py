"""Render Kamailio's configuration from the template in this package."""

from __future__ import annotations

import glob
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
from gateway.numbering import emergency_pattern
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


@dataclass(frozen=True)
class TlsInputs:
    """Where the TLS listener is and what it serves."""

    port: int
    files: TlsFiles
    config_path: Path  # the tls module's own config (gateway.sip.tls.tls_config)


ROUTE_KEY_FILE = "sip-route.key"


def edge_keys(data_dir: Path) -> EdgeKeys:
    """A fresh caller key, and the route key from the data dir (made once, readable by us only)."""
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
        cloud = (
            "#!define WITH_CLOUD\n"
            f'#!define CLOUD_URI "{config.cloud.sbc}"\n'
            f'#!define CLOUD_HOST "{inputs.cloud_host_ip}"'
        )
        server_name = cloud_server_name(config)
        if tls and server_name is not None:
            # SNI on the connection to the cloud: the tls module sends none of its own (route[TO_CLOUD]).
            cloud += f'\n#!define CLOUD_SNI "{server_name}"'
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
        survival=1 if inputs.survival else 0,
        max_expires=survival_expires if inputs.survival else config.survival.normal_max_expires,
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
    )


def kamailio_command(binary: str, cfg: Path, run_dir: Path) -> list[str]:
    """Kamailio in the foreground, logging to stderr, with Lifeline's memory sizes."""
    # -DD: no daemonising, so the supervisor owns the main process; -m/-M: shared and private
    # memory in MB, enough for thousands of bindings on a Pi.
    return [binary, "-DD", "-E", "-f", str(cfg), "-m", "64", "-M", "8", "-Y", str(run_dir)]


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
