"""What Kamailio's cloud side is rendered with: Lifeline's own port towards the cloud, the standby SBCs' addresses."""

from __future__ import annotations

import asyncio

import structlog

from gateway.config import Config
from gateway.errors import SipError
from gateway.sip.render import free_port, port_free, resolve_cloud_host
from gateway.store import Store

log = structlog.get_logger("kamailio")

RESOLVE_LIMIT_S = 10.0


async def standby_addresses(store: Store, config: Config) -> tuple[str, ...]:
    """cloud.standby's addresses, in order; one that does not resolve now keeps its last known address."""
    saved = await asyncio.to_thread(store.get_state, "standby_addresses") or {}
    found: dict[str, str] = {}
    for uri in config.cloud.standby:
        try:
            async with asyncio.timeout(RESOLVE_LIMIT_S):
                found[uri] = str(await asyncio.to_thread(resolve_cloud_host, uri))
        except (SipError, TimeoutError) as err:
            if uri not in saved:
                raise SipError(f"cloud.sbc: {uri} does not resolve and has no last known address") from err
            log.warning("a standby SBC does not resolve; using its last known address", sbc=uri)
            found[uri] = str(saved[uri])
    await asyncio.to_thread(store.set_state, "standby_addresses", found)
    return tuple(found[uri] for uri in config.cloud.standby)


async def cloud_port(store: Store, config: Config, sip_port: int) -> int:
    """Lifeline's SIP port towards the cloud: configured, else picked once and kept (the cloud's Paths name it)."""
    if config.cloud.local_port:
        return config.cloud.local_port
    saved = await asyncio.to_thread(store.get_state, "cloud_port")
    listen = config.sip.listen
    if isinstance(saved, int) and saved != sip_port and await asyncio.to_thread(port_free, listen, saved):
        return saved
    port = await asyncio.to_thread(free_port, listen)
    await asyncio.to_thread(store.set_state, "cloud_port", port)
    return port
