"""The cloud's SBC list the daemon runs with: configured, or an SRV name's targets kept fresh while running."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from gateway.config import Config
from gateway.errors import DnsLookupError, SipError
from gateway.sip.cloud_side import standby_addresses
from gateway.sip.render import resolve_cloud_host
from gateway.sip.srv import SbcList, configured, lookup, refresh_after
from gateway.store import Store

log = structlog.get_logger("cloud")

# Called with the config as if the installer had written the new list, the first SBC's address, the rest's.
OnChange = Callable[[Config, str | None, tuple[str, ...]], Awaitable[None]]


def with_sbcs(config: Config, uris: tuple[str, ...]) -> Config:
    """The config with cloud.sbc set to this list, exactly as `sbc = [...]` in the file would set it."""
    cloud = config.cloud.model_copy(update={"sbc": uris[0], "standby": uris[1:]})
    return config.model_copy(update={"cloud": cloud})


class CloudSbcs:
    """cloud.sbc's SBCs in order, and their addresses; an SRV name is looked up again after its TTL."""

    def __init__(self, config: Config, store: Store) -> None:
        self.base = config  # as the file has it: cloud.sbc may be an SRV name
        self.store = store
        self.current = configured(config.cloud.sbcs)
        self._next_s = config.cloud.srv_refresh_max_s
        self._task: asyncio.Task[None] | None = None

    def status(self) -> dict[str, str | None]:
        """Where the SBC list came from (status and doctor show it with each SBC)."""
        return {"srv": self.base.cloud.srv_name, "source": self.current.source}

    async def resolve(self) -> tuple[Config, str | None, tuple[str, ...]]:
        """The list to start with, and its addresses: the last good SRV answer when DNS fails now."""
        name, sbc = self.base.cloud.srv_name, self.base.cloud.sbc
        if name is not None and sbc is not None:
            saved = await asyncio.to_thread(self.store.get_state, "cloud_srv") or {}
            cloud = self.base.cloud
            try:
                self.current = await lookup(sbc, name)
                self._next_s = refresh_after(self.current.ttl_s, cloud.srv_refresh_min_s, cloud.srv_refresh_max_s)
            except DnsLookupError as err:
                self._next_s = cloud.srv_refresh_min_s  # asked again soon: this list is only a stand-in
                if saved.get("name") == name and saved.get("uris"):
                    self.current = SbcList(tuple(saved["uris"]), str(saved["source"]), None)
                    log.warning("cloud.sbc's SRV lookup failed; using the last good SBC list", error=str(err))
                else:  # nothing known yet: the name's own address, as without SRV records (RFC 3263)
                    log.warning("cloud.sbc's SRV lookup failed; trying the name's address", error=str(err))
                    self.current = SbcList((sbc,), f"address of {name.split('.', 2)[2]} (SRV lookup failed)", None)
        config = with_sbcs(self.base, self.current.uris) if self.current.uris else self.base
        first, standby = await self._addresses(config)
        await self._save()
        return config, first, standby

    def start(self, on_change: OnChange) -> None:
        """Keep an SRV name's list fresh while running (nothing to do for a configured list)."""
        if self.base.cloud.srv_name is not None:
            self._task = asyncio.create_task(self.watch(on_change), name="cloud-srv")

    async def stop(self) -> None:
        """Stop looking the name up."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def watch(self, on_change: OnChange) -> None:
        """Look the SRV name up again after each answer's TTL; a new list goes to on_change, a failure keeps the old."""
        name, sbc = self.base.cloud.srv_name, self.base.cloud.sbc
        if name is None or sbc is None:
            return
        cloud = self.base.cloud
        while True:
            await asyncio.sleep(self._next_s)
            try:
                found = await lookup(sbc, name)
            except DnsLookupError as err:
                # DNS trouble is not a dead cloud: the probes decide that, on the last good list.
                log.warning("cloud.sbc's SRV lookup failed; keeping the last good SBC list", error=str(err))
                self._next_s = cloud.srv_refresh_min_s
                continue
            self._next_s = refresh_after(found.ttl_s, cloud.srv_refresh_min_s, cloud.srv_refresh_max_s)
            if found.uris == self.current.uris:
                self.current = found
                continue
            config = with_sbcs(self.base, found.uris)
            try:
                first, standby = await self._addresses(config)
            except SipError as err:
                log.warning("the new SBC list does not resolve; keeping the last good one", error=str(err))
                continue
            log.info("cloud.sbc's SBC list changed", old=list(self.current.uris), new=list(found.uris))
            self.current = found
            await self._save()
            await on_change(config, first, standby)

    async def _addresses(self, config: Config) -> tuple[str | None, tuple[str, ...]]:
        first = await first_address(self.store, config.cloud.sbc)
        standby = await standby_addresses(self.store, config) if first is not None else ()
        return first, standby

    async def _save(self) -> None:
        name = self.base.cloud.srv_name
        if name is not None and self.current.ttl_s is not None and self.current.source.startswith("SRV"):
            record = {"name": name, "uris": list(self.current.uris), "source": self.current.source}
            await asyncio.to_thread(self.store.set_state, "cloud_srv", record)


async def first_address(store: Store, sbc: str | None) -> str | None:
    """The first SBC's address; the last one that resolved when DNS is down (a restart mid-outage)."""
    try:
        async with asyncio.timeout(10):
            address = await asyncio.to_thread(resolve_cloud_host, sbc)
    except (SipError, TimeoutError) as err:
        saved = await asyncio.to_thread(store.get_state, "cloud_address")
        if not saved or saved.get("sbc") != sbc:
            if isinstance(err, TimeoutError):
                raise SipError(f"cloud.sbc = {sbc!r}: no address within 10 s") from err
            raise
        log.warning("cloud SBC does not resolve; using its last known address", error=str(err), **saved)
        return str(saved["address"])
    if address is not None:
        await asyncio.to_thread(store.set_state, "cloud_address", {"sbc": sbc, "address": address})
    return address
