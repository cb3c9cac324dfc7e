"""The daemon's heap on a small box: few glibc arenas, and freed pages handed back to the kernel."""

from __future__ import annotations

import contextlib
import ctypes
import functools

M_ARENA_MAX = -8  # glibc's malloc.h


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018  # glibc's own: musl and others have neither
    except (OSError, AttributeError):
        return None
    return libc


def few_arenas(count: int = 2) -> None:
    """Cap glibc's malloc arenas; call before any thread starts."""
    # glibc gives each thread that allocates its own arena (to_thread's workers, aiohttp's resolver):
    # on a Pi the daemon's memory grew with the threads it had ever used. Two are plenty for one loop.
    libc = _libc()
    if libc is not None:
        libc.mallopt(M_ARENA_MAX, count)


def release_free_pages() -> None:
    """Hand the heap's free pages back to the kernel (blocks for a moment: call it off the event loop)."""
    # A big short-lived document (a large branch's phone list, parsed from usrloc's dump) frees its
    # memory, but glibc keeps the pages between live blocks: without this the daemon stays at its peak.
    libc = _libc()
    if libc is not None:
        with contextlib.suppress(OSError):
            libc.malloc_trim(0)
