"""Gathers the doctor's facts once: the daemon's status, a SIP OPTIONS on loopback, and the machine's own state."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from gateway import config as config_mod
from gateway.cdr.clock import kernel_clock_synced
from gateway.cli.client import request
from gateway.config import Config
from gateway.core.probes import DnsProbe, ProbeResult, SipOptionsProbe
from gateway.doctor import machine
from gateway.doctor.cloud_srv import srv_lookup
from gateway.doctor.drill import last_report, timer_enabled
from gateway.doctor.model import Disk, Facts
from gateway.doctor.service import cloud_names
from gateway.errors import ConfigError, DaemonRequestError, DaemonUnreachableError, LifelineError
from gateway.ha.doctor import peer_target
from gateway.trunk.ports import ByIdFinder, PortFinder, SysfsFinder
from gateway.trunk.profiles import Family, configured

STATUS_LIMIT_S = 5.0
SIP_LIMIT_S = 2.0  # loopback answers in milliseconds; UDP is sent again after 0.5 s
DNS_LIMIT_S = 3.0
LOCAL_LIMIT_S = 5.0  # a file-system read that takes longer is itself a finding
ALL_LIMIT_S = 20.0
# Kamailio listening on every address answers on loopback too; the probe never leaves the box.
LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1"}

T = TypeVar("T")


def paths_only(path: Path | None) -> Config:
    """For a config that does not validate: its [paths] if those do, else the defaults (where daemon and data are)."""
    candidates = [path] if path is not None else [p for p in config_mod.DEFAULT_PATHS if p.exists()]
    try:
        data = tomllib.loads(candidates[0].read_text(encoding="utf-8")) if candidates else {}
        return config_mod.parse({"paths": data.get("paths", {})})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, ConfigError):
        return Config()


def sip_target(config: Config | None, status: dict[str, Any] | None) -> str | None:
    """The SIP URI of Kamailio's own port on loopback: from the daemon's status, else a fixed sip.port."""
    if status is not None:
        sip = status.get("sip") or {}
        listen, port, transports = str(sip.get("listen")), int(sip.get("port") or 0), list(sip.get("transports") or [])
    elif config is not None:
        listen, port, transports = config.sip.listen, config.sip.port, list(config.sip.transports)
    else:
        return None
    transport = "udp" if "udp" in transports else "tcp" if "tcp" in transports else None
    if not port or transport is None:
        return None  # a free port picked at start, or TLS only (its certificate is the certificate check's)
    host = LOOPBACK.get(listen, listen)
    return f"sip:{f'[{host}]' if ':' in host else host}:{port};transport={transport}"


def modem_ports(config: Config) -> dict[str, str | None]:
    """Each configured modem's ports as the trunk agent would find them (blocking: call off the loop)."""
    found: dict[str, str | None] = {}
    for mc in config.trunk.modems:
        profile = configured(Family(mc.family), wideband=mc.wideband)
        finder: PortFinder = (
            ByIdFinder(profile, mc.match, mc.by_id_dir) if mc.find_by == "by-id" else SysfsFinder(profile)
        )
        try:
            ports = finder.find()
        except OSError:
            ports = None
        found[mc.name] = None if ports is None else f"{ports.at} ({ports.ident})"
    return found


async def _status(socket: Path) -> tuple[dict[str, Any] | None, str | None, bool]:
    """The daemon's status, or why there is none and whether nobody is there at all."""
    try:
        status = await request(socket, "GET", "/api/v1/status", limit_s=STATUS_LIMIT_S)
    except DaemonUnreachableError as err:
        return None, str(err), True
    except DaemonRequestError as err:
        return None, str(err), False
    if not isinstance(status, dict):
        return None, "the daemon's status is not a JSON object", False
    return status, None, False


async def _local(fn: Callable[..., T], *args: Any) -> T:
    """Blocking file-system work off the event loop, with a time limit."""
    async with asyncio.timeout(LOCAL_LIMIT_S):
        return await asyncio.to_thread(fn, *args)


async def _options(target: str | None) -> ProbeResult | None:
    if target is None:
        return None
    return await SipOptionsProbe(target, SIP_LIMIT_S, name="doctor").check()


async def _dns(config: Config | None, running: bool) -> ProbeResult | None:
    # The daemon probes the cloud itself; only with it down does the doctor look up the names (never more).
    names = cloud_names(config) if config is not None and not running else []
    if not names:
        return None
    return await DnsProbe(names, DNS_LIMIT_S, name="doctor-dns").check()


async def _disk(path: Path) -> tuple[Disk | None, str | None]:
    try:
        return await _local(machine.read_disk, path), None
    except OSError as err:
        return None, f"{path}: {err.strerror}"
    except TimeoutError:
        return None, f"{path}: no answer within {LOCAL_LIMIT_S:g} s"


async def _maybe(fn: Callable[..., T], *args: Any) -> T | None:
    """A local fact that is simply unknown when it cannot be read in time."""
    try:
        return await _local(fn, *args)
    except (OSError, TimeoutError):
        return None


async def gather(
    config: Config | None, config_path: Path | None, config_error: str | None = None, paths: Config | None = None
) -> Facts:
    """Every fact the checks need; config None (an invalid one) reads paths from `paths`."""
    where = config if config is not None else (paths or Config())
    try:
        async with asyncio.timeout(ALL_LIMIT_S):
            status, daemon_error, absent = await _status(where.api_socket)
            target = sip_target(config, status)
            offline = config is not None and status is None
            async with asyncio.TaskGroup() as group:
                sip = group.create_task(_options(target))
                peer = group.create_task(_options(peer_target(config, target)))
                dns = group.create_task(_dns(config, status is not None))
                srv = group.create_task(srv_lookup(config))
                ports = group.create_task(_maybe(modem_ports, config) if offline else _none())
                disk = group.create_task(_disk(where.data_dir))
                synced = group.create_task(_maybe(kernel_clock_synced))
                wear = group.create_task(_maybe(machine.read_wear))
                cert = group.create_task(_maybe(machine.read_certificate, config) if config else _none())
                drills = group.create_task(_maybe(last_report, where.data_dir / "drills") if offline else _none())
                timer = group.create_task(_maybe(timer_enabled))
    except TimeoutError as err:
        raise LifelineError(f"doctor: the checks did not finish within {ALL_LIMIT_S:g} s") from err
    return Facts(
        config=config,
        config_path=config_path,
        config_error=config_error,
        status=status,
        daemon_error=daemon_error,
        daemon_absent=absent,
        sip_target=target,
        sip_answer=sip.result(),
        peer_answer=peer.result(),
        dns=dns.result(),
        srv=srv.result(),
        modem_ports=ports.result() or {},
        disk=disk.result()[0],
        disk_error=disk.result()[1],
        clock_synced=synced.result(),
        wear=wear.result(),
        certificate=cert.result(),
        drill_last=drills.result(),
        drill_timer=timer.result(),
    )


async def _none() -> None:
    return None
