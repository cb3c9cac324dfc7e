"""Child processes of the daemon: ended with it however it ends, waited for by pidfd, killed as a group."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
from collections.abc import Awaitable, Callable, Sequence

import structlog

PR_SET_PDEATHSIG = 1  # linux/prctl.h

log = structlog.get_logger(__name__)


def die_with_parent() -> None:
    """preexec_fn of a child: the kernel sends it SIGTERM when the daemon dies."""
    # Without it a daemon killed outright leaves Kamailio holding the SIP port, the trunk agent
    # holding the modem, a drill's phone calling on; systemd's cgroup kill covers only the service.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


async def exited(pid: int) -> None:
    """Return when the process exits (a pidfd becomes readable), even if its children live on."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def kill_group(pgid: int) -> None:
    """SIGKILL a whole process group (a child started with start_new_session=True and all it forked)."""
    # Kamailio's worker processes and keepalived's VRRP child outlive a main process that was killed.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


async def start_child(args: Sequence[str]) -> asyncio.subprocess.Process:
    """Start a supervised server in a process group of its own, ended with the daemon; output on one pipe."""
    return await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )


async def keep_running(
    current: Callable[[], asyncio.subprocess.Process | None],
    stopping: Callable[[], bool],
    on_exit: Callable[[int, float], None],
    respawn: Callable[[int], Awaitable[None]],
    failure: type[Exception],
    name: str,
    backoff_max: float = 30.0,
) -> None:
    """Restart a supervised server whenever it exits, the pause doubling while restarts fail; until stopping()."""
    backoff = 1.0
    while True:
        proc = current()
        assert proc is not None
        await exited(proc.pid)
        if stopping():
            return
        kill_group(proc.pid)  # what it forked (Kamailio's workers, keepalived's VRRP child) must not live on
        code = await proc.wait()
        on_exit(code, backoff)
        await asyncio.sleep(backoff)
        try:
            await respawn(code)
            backoff = 1.0
        except failure as err:
            log.error(f"{name} restart failed", error=str(err))
            backoff = min(backoff * 2, backoff_max)


async def stop_child(proc: asyncio.subprocess.Process | None, grace_s: float, name: str) -> None:
    """SIGTERM a supervised server, SIGKILL its whole group after grace_s (or at once once it has gone)."""
    if proc is None or proc.returncode is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(grace_s):
            await exited(proc.pid)
    except TimeoutError:
        log.warning(f"{name} ignored SIGTERM; killing it", pid=proc.pid)
    kill_group(proc.pid)
    await proc.wait()
