"""Child processes of the daemon: ended with it however it ends, waited for by pidfd, killed as a group."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1  # linux/prctl.h


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
