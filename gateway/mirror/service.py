"""The mirror service: syncs on start, every interval, on demand and on a vendor's webhook; watches staleness."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from gateway.config import MirrorConfig
from gateway.listeners import AsyncListeners
from gateway.mirror.engine import SyncEngine, SyncResult, state_key
from gateway.mirror.errors import MirrorError
from gateway.mirror.source import DirectorySource
from gateway.store import Store

log = structlog.get_logger("mirror")

# (event, data): "mirror_stale" / "mirror_fresh"; the alert interface (issue 3) subscribes here.
RemovedHook = Callable[[list[str]], Awaitable[None]]
TICK_MAX_S = 30.0


class MirrorHealth(enum.StrEnum):
    """How trustworthy the mirror is right now."""

    UNCONFIGURED = "unconfigured"
    NEVER_SYNCED = "never_synced"
    FRESH = "fresh"
    FAILING = "failing"  # the last sync failed; the last good copy is still young enough
    STALE = "stale"  # older than stale_after_s while the cloud is reachable: somebody should look


class MirrorService:
    """Keeps the store's extensions in step with one directory source."""

    def __init__(
        self,
        store: Store,
        source: DirectorySource | None,
        config: MirrorConfig,
        realm: str,
        *,
        cloud_reachable: Callable[[], bool],
        on_removed: RemovedHook | None = None,
    ) -> None:
        self.store = store
        self.source = source
        self.config = config
        self.cloud_reachable = cloud_reachable
        self.on_removed = on_removed
        deadline = max(config.timeout_s * 10, 60.0)
        self.engine = SyncEngine(store, source, realm, deadline) if source is not None else None
        self.health = MirrorHealth.UNCONFIGURED if source is None else MirrorHealth.NEVER_SYNCED
        self.started = time.time()
        self.progress: tuple[int, int | None] | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._manual: asyncio.Task[None] | None = None
        self.on_health: AsyncListeners[[str, dict[str, Any]]] = AsyncListeners("mirror health")  # stale, fresh

    async def start(self) -> None:
        """Start the periodic loop (the first sync runs at once)."""
        if self.engine is not None:
            health = await asyncio.to_thread(self.engine.health)
            if health.get("last_ok"):
                self._set_state(MirrorHealth.FRESH, "a previous sync is on record")
            self._task = asyncio.create_task(self._loop(), name="mirror-sync")

    async def stop(self) -> None:
        """Stop the loop; a sync in progress is cancelled (and so applies nothing)."""
        for task in (self._task, self._manual):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._manual = None

    def start_sync(self, *, full: bool, allow_empty: bool, reason: str) -> bool:
        """Start a sync in the background (the caller follows it in status()); False if one already runs."""
        if self.engine is None or self._lock.locked() or (self._manual is not None and not self._manual.done()):
            return False
        log.info("directory sync requested", reason=reason, full=full, allow_empty=allow_empty)
        self._manual = asyncio.create_task(self._manual_sync(full, allow_empty), name="mirror-sync-now")
        return True

    async def _manual_sync(self, full: bool, allow_empty: bool) -> None:
        with contextlib.suppress(MirrorError):  # recorded in the health by the engine
            await self.sync(full=full, allow_empty=allow_empty)

    def trigger(self, reason: str) -> None:
        """Pull as soon as possible (a vendor webhook said something changed)."""
        log.info("directory sync requested", reason=reason)
        self._wake.set()

    async def _loop(self) -> None:
        next_sync = 0.0
        while True:
            if self._wake.is_set() or time.monotonic() >= next_sync:
                self._wake.clear()
                with contextlib.suppress(MirrorError):
                    await self.sync()
                next_sync = time.monotonic() + self.config.interval_s
            await self._check_stale()
            wait = min(TICK_MAX_S, max(0.0, next_sync - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def sync(self, *, full: bool = False, allow_empty: bool = False) -> SyncResult:
        """One sync now (serialised with the loop's); MirrorError when it fails."""
        if self.engine is None:
            raise MirrorError("no directory source is configured ([mirror] source)")
        async with self._lock:
            self.progress = (0, None)
            try:
                result = await self.engine.run(full=full, allow_empty=allow_empty, progress=self._progress)
            except MirrorError as err:
                await self._after(failed=str(err))
                raise
            finally:
                self.progress = None
        if result.removed and self.on_removed is not None:
            try:
                await self.on_removed(result.removed)
            except Exception as err:  # bindings expire anyway; the sync itself stood
                log.warning("could not drop the bindings of deleted extensions", error=str(err))
        await self._after(failed=None)
        return result

    def _progress(self, done: int, total: int | None) -> None:
        self.progress = (done, total)

    async def _after(self, failed: str | None) -> None:
        if failed is None:
            was_stale = self.health == MirrorHealth.STALE
            self._set_state(MirrorHealth.FRESH, "sync succeeded")
            if was_stale and self.engine is not None:
                await self.on_health.emit("mirror_fresh", {"source": self.engine.source.name, "age_s": 0})
        elif self.health != MirrorHealth.STALE:
            self._set_state(MirrorHealth.FAILING, failed)
        await self._check_stale()

    def _age(self, health: dict[str, Any]) -> float:
        last_ok = health.get("last_ok")
        return time.time() - (last_ok if last_ok else self.started)

    async def _check_stale(self) -> None:
        if self.engine is None:
            return
        health = await asyncio.to_thread(self.engine.health)
        age = self._age(health)
        stale = age > self.config.stale_after_s and self.cloud_reachable()
        if stale and self.health != MirrorHealth.STALE:
            reason = f"the mirror is {age:.0f} s old (limit {self.config.stale_after_s} s) while the cloud is reachable"
            self._set_state(MirrorHealth.STALE, reason)
            data = {"source": self.engine.source.name, "age_s": round(age), "last_error": health.get("last_error")}
            await asyncio.to_thread(self.store.add_event, "mirror_stale", reason, data)
            await self.on_health.emit("mirror_stale", data)
        elif not stale and self.health == MirrorHealth.STALE:
            good = not health.get("last_error")
            self._set_state(MirrorHealth.FRESH if good else MirrorHealth.FAILING, "no longer stale")
            await self.on_health.emit("mirror_fresh", {"source": self.engine.source.name, "age_s": round(age)})

    def _set_state(self, new: MirrorHealth, reason: str) -> None:
        old, self.health = self.health, new
        if old != new:
            log.info("mirror health", old=old.value, new=new.value, reason=reason)

    async def status(self) -> dict[str, Any]:
        """What `lifeline status` shows about the mirror."""
        counts = await asyncio.to_thread(self.store.count_by_source)
        if self.engine is None:
            return {"source": None, "health": self.health.value, "stale": False, "counts": counts}
        health = await asyncio.to_thread(self.engine.health)
        return status_from_health(
            health,
            source=self.engine.source.name,
            describe=self.engine.source.describe(),
            state=self.health.value,
            config=self.config,
            counts=counts,
            age_s=round(self._age(health), 1),
            syncing=self._lock.locked(),
            progress=self.progress,
        )


def status_from_health(
    health: dict[str, Any],
    *,
    source: str,
    describe: dict[str, str],
    state: str,
    config: MirrorConfig,
    counts: dict[str, int],
    age_s: float | None,
    syncing: bool = False,
    progress: tuple[int, int | None] | None = None,
) -> dict[str, Any]:
    """The mirror's status document (also built offline by the CLI from the store)."""
    return {
        "source": source,
        **describe,
        "health": state,
        "stale": state == MirrorHealth.STALE.value,
        "stale_after_s": config.stale_after_s,
        "interval_s": config.interval_s,
        "age_s": age_s,
        "last_ok": health.get("last_ok"),
        "last_attempt": health.get("last_attempt"),
        "last_error": health.get("last_error"),
        "last_error_at": health.get("last_error_at"),
        "extensions": health.get("extensions", 0),
        "groups": health.get("groups", 0),
        "last_result": health.get("last_result"),
        "short_passwords": health.get("short_passwords") or [],
        "syncing": syncing,
        "progress": None if progress is None else {"done": progress[0], "total": progress[1]},
        "counts": counts,
    }


__all__ = ["MirrorHealth", "MirrorService", "state_key", "status_from_health"]
