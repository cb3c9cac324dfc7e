"""The registered phones: Kamailio's bindings with the directory's names and how each was taken.

A binding is taken through the cloud (NORMAL: relayed, the cloud's 200 OK copied) or by Lifeline
itself (SURVIVAL, or no cloud configured). Kamailio does not record which, so it is read from the
mode history: the mode Lifeline was in when usrloc last saved the binding. The user agent of a
binding copied from the cloud's answer is not the phone's (it is the answer's, usually absent): it
is shown only for bindings Lifeline took itself. No secret is ever in the list: usrloc holds none.
Known limit: a phone that names Lifeline itself as registrar (backup registrar) is served locally
even in NORMAL, yet listed as taken through the cloud; Kamailio's config would have to mark it.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Protocol

from gateway import memory
from gateway.core.mode import Mode
from gateway.errors import RpcError
from gateway.mirror import repository as directory
from gateway.sip.bindings import Binding
from gateway.sip.supervisor import STATUS_WAIT_S
from gateway.store import events_since

if TYPE_CHECKING:
    from gateway.config import Config
    from gateway.core.mode import ModeController
    from gateway.sip.supervisor import KamailioSupervisor
    from gateway.store import Store


def mode_at(saved: float, changes: list[tuple[float, str, str]], current: str) -> str:
    """The mode when a binding was saved, from mode changes (ts, old, new), oldest first; `current` if none came after.

    usrloc keeps whole seconds: a change within the second the binding was saved counts as before it.
    """
    for when, old, _new in changes:
        if when >= saved + 1:
            return old
    return current


class PhoneHost(Protocol):
    """What the list needs of the daemon (gateway.app.App)."""

    @property
    def store(self) -> Store:
        """The store: the directory's names, the mode history."""
        ...

    @property
    def kamailio(self) -> KamailioSupervisor | None:
        """Kamailio, once started."""
        ...

    @property
    def mode(self) -> ModeController:
        """The mode now."""
        ...

    @property
    def config(self) -> Config:
        """Whether a cloud is configured; the trunk agent's extension."""
        ...


# How old the phone list may be while usrloc's counts stay the same (a phone that registers or goes
# away shows at once). usrloc's dump of a large branch is hundreds of KiB of JSON: built at most this
# often, however many pages, API clients and Prometheus scrapes ask (bench/api).
LIST_TTL_S = 5.0
MIN_REBUILD_S = 1.0  # during a register storm the counts change all the time


class PhoneList:
    """The status document's "registrations": usrloc's counts now, and the phones built anew when they change."""

    def __init__(self, host: PhoneHost, ttl_s: float = LIST_TTL_S) -> None:
        self.host, self.ttl_s = host, ttl_s
        self._phones: list[dict[str, Any]] | None = None
        self._counts: dict[str, Any] = {}
        self._built = -float("inf")
        self._lock = asyncio.Lock()  # one dump at a time; the others wait for it and share it

    async def registrations(self, with_list: bool = True) -> dict[str, Any] | None:
        """Counts and `phones`, each contact (None: Kamailio is silent; `phones` None: its dump failed)."""
        kamailio = self.host.kamailio
        if kamailio is None:
            return None
        counts = await kamailio.registrations_within(STATUS_WAIT_S)
        if counts is None:
            return None
        if not with_list:
            return counts
        async with self._lock:
            age = time.monotonic() - self._built
            if age >= self.ttl_s or (counts != self._counts and age >= MIN_REBUILD_S):
                self._phones = await self._build(kamailio)
                self._counts, self._built = counts, time.monotonic()
                await asyncio.to_thread(memory.release_free_pages)  # the dump's parse is the daemon's peak
        return {**counts, "phones": self._phones}

    async def _build(self, kamailio: KamailioSupervisor) -> list[dict[str, Any]] | None:
        try:
            bindings = await kamailio.bindings()
        except RpcError:
            return None
        host = self.host
        oldest = min((b.modified for b in bindings if b.modified is not None), default=time.time())
        names, changes = await asyncio.to_thread(_lookup, host.store, sorted({b.aor for b in bindings}), oldest)
        config = host.config
        cloud, trunk = bool(config.cloud.sbc), config.trunk.extension
        now, current = time.time(), host.mode.mode.value
        return [_row(b, names, changes, current, cloud, trunk, now) for b in bindings]


def _row(
    binding: Binding,
    names: dict[str, str],
    changes: list[tuple[float, str, str]],
    current: str,
    cloud: bool,
    trunk: str | None,
    now: float,
) -> dict[str, Any]:
    mode = mode_at(binding.modified, changes, current) if binding.modified is not None else current
    local = not cloud or Mode(mode).serves_locally
    expires = binding.expires_s
    return {
        "extension": binding.aor,
        "name": names.get(binding.aor) or ("trunk agent" if binding.aor == trunk else None),
        "source": binding.source,
        "transport": binding.transport,
        "user_agent": binding.user_agent if local else None,
        "expires_s": expires,
        "expires_at": None if expires is None else round(now + expires),
        "saved_at": binding.modified,
        "taken": "local" if local else "cloud",
        "mode": mode,
        "contact": binding.contact,
    }


def _lookup(store: Store, numbers: list[str], since: float) -> tuple[dict[str, str], list[tuple[float, str, str]]]:
    """The directory's names of these numbers, and the mode changes since `since` (worker thread)."""
    with store.read() as conn:
        named = directory.display_names(conn, numbers)
        events = events_since(conn, ("mode",), since)
    modes = {m.value for m in Mode}
    changes = []
    for event in events:
        parsed = event["data"]
        if parsed.get("old") in modes and parsed.get("new") in modes:
            changes.append((float(event["ts"]), str(parsed["old"]), str(parsed["new"])))
    return named, changes


def _left(seconds: int | None) -> str:
    if seconds is None:
        return "permanent"
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def taken_text(phone: dict[str, Any]) -> str:
    """'NORMAL (cloud)', 'SURVIVAL (local)'…: the mode the binding was taken in, and by whom."""
    return f"{str(phone.get('mode') or '?').upper()} ({phone.get('taken')})"


def status_lines(phones: list[dict[str, Any]] | None, limit: int = 20) -> list[str]:
    """`lifeline status`'s lines under the registration counts: one per phone, the first `limit`."""
    if not phones:
        return []
    lines = [
        f"  {p['extension']:>6} {str(p.get('name') or '')[:18]:<18} {p['source']:<21} {p['transport']:<4}"
        f" {taken_text(p):<18} expires in {_left(p.get('expires_s'))}"
        for p in phones[:limit]
    ]
    if len(phones) > limit:
        lines.append(f"  … and {len(phones) - limit} more (`lifeline status --json` lists all)")
    return lines
