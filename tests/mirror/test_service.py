"""The mirror service: staleness (only while the cloud is reachable), listeners, webhook-triggered pulls."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.config import MirrorConfig
from gateway.mirror.service import MirrorHealth, MirrorService
from gateway.store import Store
from tests.mirror.conftest import REALM, lifeline_source
from tests.mirror.fakes import FakeLifelineApi, lifeline_record


async def until(check: Callable[[], Awaitable[bool]], what: str, within: float = 10.0) -> None:
    """Poll an async condition (the service has no event for each of these) with a generous timeout."""
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def has(svc: MirrorService, key: str) -> bool:
    return (await svc.status())[key] is not None


async def count_is(svc: MirrorService, n: int) -> bool:
    return bool((await svc.status())["extensions"] == n)


async def is_true(value: bool) -> bool:
    return value


def service(store: Store, url: str, reachable: list[bool], **cfg: Any) -> MirrorService:
    config = MirrorConfig(source="lifeline", url=url, token="test-token", interval_s=3600, **cfg)  # type: ignore[arg-type]
    return MirrorService(store, lifeline_source(url), config, REALM, cloud_reachable=lambda: reachable[0])


async def test_old_mirror_turns_stale_only_while_the_cloud_is_reachable(store: Store, api_url: str) -> None:
    reachable = [False]
    svc = service(store, api_url + "/broken", reachable, stale_after_s=60)
    events: list[tuple[str, dict[str, Any]]] = []

    async def listener(event: str, data: dict[str, Any]) -> None:
        events.append((event, data))

    svc.on_health.add(listener)
    store.set_state("mirror.lifeline", {"last_ok": time.time() - 7200, "extensions": 3})
    await svc.start()
    try:
        await until(lambda: has(svc, "last_attempt"), "the first attempt")
        status = await svc.status()
        assert status["health"] == MirrorHealth.FAILING and not status["stale"]  # the cloud is down: no alarm
        assert "HTTP 404" in status["last_error"]
        reachable[0] = True
        svc.trigger("test")
        await until(lambda: is_true(bool(events)), "the stale event")
        status = await svc.status()
        assert status["stale"] and status["health"] == "stale" and status["age_s"] > 7000
        assert events[0][0] == "mirror_stale" and "HTTP 404" in events[0][1]["last_error"]
        assert store.recent_events(1)[0]["kind"] == "mirror_stale"
    finally:
        await svc.stop()


async def test_fresh_sync_clears_staleness_and_notifies(store: Store, fake_api: FakeLifelineApi, api_url: str) -> None:
    reachable = [True]
    svc = service(store, api_url, reachable, stale_after_s=60)
    events: list[str] = []

    async def listener(event: str, data: dict[str, Any]) -> None:
        events.append(event)

    svc.on_health.add(listener)
    svc._set_state(MirrorHealth.STALE, "test starts stale")
    result = await svc.sync()
    assert result.total == 3
    assert svc.health == MirrorHealth.FRESH and events == ["mirror_fresh"]


async def test_webhook_trigger_pulls_at_once(store: Store, fake_api: FakeLifelineApi, api_url: str) -> None:
    svc = service(store, api_url, [True])
    await svc.start()
    try:
        await until(lambda: count_is(svc, 3), "3 extensions")
        fake_api.put(lifeline_record("2004", "fourth-secret-2004"))
        svc.trigger("vendor webhook: doc_created")  # the interval is an hour: only the trigger can pull now
        await until(lambda: count_is(svc, 4), "4 extensions")
        assert (await svc.status())["counts"] == {"lifeline": 4}
    finally:
        await svc.stop()
