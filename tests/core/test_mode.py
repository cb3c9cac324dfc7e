from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from gateway.core.mode import Decision, Mode, ModeController, Override
from gateway.store import Store


async def test_override_changes_mode_records_event_and_notifies(tmp_path: Path) -> None:
    store = Store(tmp_path / "l.db")
    controller = ModeController(store)
    seen: list[tuple[Mode, Mode, str]] = []

    async def listener(old: Mode, new: Mode, reason: str) -> None:
        seen.append((old, new, reason))

    controller.on_change.add(listener)
    await controller.set_override(Override.SURVIVAL, "drill")
    assert controller.mode is Mode.SURVIVAL
    assert seen == [(Mode.NORMAL, Mode.SURVIVAL, "drill")]
    assert "normal → survival: drill" in store.recent_events()[0]["message"]


async def test_detection_is_ignored_under_override_and_applies_on_auto(tmp_path: Path) -> None:
    controller = ModeController(Store(tmp_path / "l.db"))
    await controller.set_override(Override.NORMAL, "maintenance")
    await controller.observe(Mode.SURVIVAL, "cloud unreachable")
    assert controller.mode is Mode.NORMAL
    await controller.set_override(Override.AUTO, "maintenance over")
    assert controller.mode is Mode.SURVIVAL
    assert controller.status().reason == "maintenance over"


async def test_mode_survives_a_restart(tmp_path: Path) -> None:
    store = Store(tmp_path / "l.db")
    await ModeController(store).set_override(Override.SURVIVAL, "outage")
    store.close()
    again = ModeController(Store(tmp_path / "l.db"))
    assert again.mode is Mode.SURVIVAL
    assert again.status().override is Override.SURVIVAL


def test_only_survival_and_recovering_serve_locally() -> None:
    assert [m for m in Mode if m.serves_locally] == [Mode.SURVIVAL, Mode.RECOVERING]


def test_a_restart_keeps_the_first_start_on_record(tmp_path: Path) -> None:
    store = Store(tmp_path / "l.db")
    first = ModeController(store).status()
    assert (first.mode, first.reason) == (Mode.NORMAL, "first start")
    store.close()
    # A restart without any mode change in between: still "first start", and still since then.
    again = ModeController(Store(tmp_path / "l.db")).status()
    assert (again.reason, again.since) == ("first start", first.since)


class BusyDisk:
    """A slow SD card: another writer holds the store until released; the controller's listener flips."""

    def __init__(self, store: Store, controller: ModeController) -> None:
        self.flipped = asyncio.Event()
        self._release, self._holding = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._hold, args=(store,))
        controller.on_change.add(self._kamailio)

    async def _kamailio(self, old: Mode, new: Mode, reason: str) -> None:
        self.flipped.set()

    def _hold(self, store: Store) -> None:
        with store.write():
            self._holding.set()
            self._release.wait(30)

    async def __aenter__(self) -> BusyDisk:
        self._thread.start()
        assert await asyncio.to_thread(self._holding.wait, 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._release.set()
        await asyncio.to_thread(self._thread.join, 10)


async def test_phones_are_switched_over_while_the_disk_is_still_busy(tmp_path: Path) -> None:
    # Another writer holds the store while detection concludes the cloud is gone.
    store = Store(tmp_path / "l.db")
    controller = ModeController(store)
    async with BusyDisk(store, controller) as disk:
        change = asyncio.create_task(controller.observe(Mode.SURVIVAL, "cloud unreachable"))
        # The listener runs, and the event loop stays free, while the record waits for the disk.
        await asyncio.wait_for(disk.flipped.wait(), 10)
        assert controller.mode is Mode.SURVIVAL and not change.done()
    await asyncio.wait_for(change, 10)
    store.close()
    reopened = Store(tmp_path / "l.db")
    assert ModeController(reopened).mode is Mode.SURVIVAL  # recorded once the disk was free
    assert "normal → survival: cloud unreachable" in reopened.recent_events()[0]["message"]


class CloudGone:
    """A failover policy that concludes SURVIVAL on the first missed probe."""

    def resume(self, mode: Mode, now: float) -> None:
        """Nothing to restore."""

    def observe(self, ok: bool, mode: Mode, now: float) -> Decision | None:
        """SURVIVAL on a miss, while not there yet."""
        return None if ok or mode is Mode.SURVIVAL else Decision(Mode.SURVIVAL, "the cloud missed a probe")


async def test_a_change_is_recorded_at_the_moment_it_was_decided_not_when_a_busy_disk_wrote_it(tmp_path: Path) -> None:
    # Failback waits out a hold-down measured from one decision to the next: the records must show the
    # decisions' times, or a slow write of the first shortens the hold-down as the records show it.
    store = Store(tmp_path / "l.db")
    controller = ModeController(store, CloudGone())
    async with BusyDisk(store, controller) as disk:
        before = time.time()
        change = asyncio.create_task(controller.observe_probe(False))
        await asyncio.wait_for(disk.flipped.wait(), 10)
        released = time.time()
    await asyncio.wait_for(change, 10)
    (event,) = [e for e in store.recent_events() if e["kind"] == "mode"]
    assert before <= event["ts"] <= released, (before, event["ts"], released)
    assert event["ts"] == controller.status().since
