"""Runs keepalived as a supervised child for [ha] and follows its VRRP state through its notify FIFO."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import stat
import time
from collections import deque
from typing import Any

import structlog

from gateway.children import keep_running, start_child, stop_child
from gateway.config import Config
from gateway.errors import HaError
from gateway.fsmode import write_private
from gateway.ha.render import PID_FILES, inputs_for, keepalived_command, render
from gateway.store import Store

log = structlog.get_logger("keepalived")

STOP_TIMEOUT = 10.0
KEEPALIVED = "/usr/sbin/keepalived"
# keepalived's VRRP states as `lifeline status` names this box's part in the pair.
ROLES = {"MASTER": "active", "BACKUP": "standby", "FAULT": "fault", "STOP": "fault"}
_LINE = re.compile(r'^INSTANCE "lifeline" (?P<state>[A-Z]+)\b')


class KeepalivedSupervisor:
    """Owns the keepalived process when [ha] is on; knows this box's role from the states it reports."""

    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store
        self.cfg_path = config.run_dir / "keepalived.conf"
        self.fifo_path = config.run_dir / "keepalived.fifo"
        self.interface: str | None = None
        self.state: str | None = None  # keepalived's last reported VRRP state
        self._last_role = "standby"  # as last recorded: keepalived starts every instance as BACKUP
        self.since = time.time()
        self.restarts = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._fifo: int | None = None
        self._buffer = b""
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._events: set[asyncio.Task[None]] = set()  # role changes being written to the store
        self._tail: deque[str] = deque(maxlen=30)

    @property
    def running(self) -> bool:
        """Whether keepalived's main process is alive."""
        return self._proc is not None and self._proc.returncode is None

    @property
    def pid(self) -> int | None:
        """keepalived's main process while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    @property
    def role(self) -> str:
        """active, standby, fault (keepalived not running: the peer takes the address), or off."""
        if not self.config.ha.enabled:
            return "off"
        if not self.running:
            return "fault"
        return ROLES.get(self.state or "BACKUP", "standby")

    async def start(self) -> None:
        """Render keepalived's config, open its FIFO and start it; HaError if it cannot start."""
        if not self.config.ha.enabled:
            return
        inputs = await asyncio.to_thread(inputs_for, self.config)
        self.interface = inputs.interface
        write_private(self.cfg_path, render(self.config, inputs))
        self._open_fifo()
        await self._spawn()
        self._tasks.append(asyncio.create_task(self._supervise(), name="keepalived-supervisor"))

    def _open_fifo(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISFIFO(self.fifo_path.stat().st_mode):
                self.fifo_path.unlink()
        if not self.fifo_path.exists():
            os.mkfifo(self.fifo_path, 0o600)
        # Read-write: no end-of-file each time keepalived closes it (a restart), and the open never waits.
        self._fifo = os.open(self.fifo_path, os.O_RDWR | os.O_NONBLOCK)
        asyncio.get_running_loop().add_reader(self._fifo, self._read_fifo)

    def _read_fifo(self) -> None:
        assert self._fifo is not None
        with contextlib.suppress(BlockingIOError):
            self._buffer += os.read(self._fifo, 4096)
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            match = _LINE.match(line.decode(errors="replace"))
            if match is not None:
                self._set_state(match["state"])

    def _set_state(self, new: str) -> None:
        old_role, self.state = self._last_role, new
        self._last_role = self.role
        if self.role != old_role:
            self.since = time.time()
            log.info("ha role", old=old_role, new=self.role, vrrp=new)
            # The status page's events say when this box took or gave up the shared address.
            message = f"pair: this box is {self.role} (was {old_role}); shared address {self.config.ha.virtual_ip}"
            data = {"old": old_role, "new": self.role, "vrrp": new}
            task = asyncio.create_task(asyncio.to_thread(self.store.add_event, "ha", message, data))
            self._events.add(task)
            task.add_done_callback(self._events.discard)

    async def _spawn(self) -> None:
        self.state = None
        # A killed keepalived leaves its pid files; while its VRRP child is still an unreaped zombie, a new
        # keepalived takes them for a running instance and exits at once. Only this supervisor runs it here.
        for name in PID_FILES:
            (self.config.run_dir / name).unlink(missing_ok=True)
        args = keepalived_command(KEEPALIVED, self.cfg_path, self.config.run_dir)
        try:
            # Killed outright, the daemon takes keepalived (and the address) along.
            self._proc = await start_child(args)
        except OSError as err:
            raise HaError(f"{KEEPALIVED}: cannot start: {err} (is the keepalived package installed?)") from err
        self._tasks.append(asyncio.create_task(self._pump_output(self._proc), name="keepalived-output"))
        log.info("keepalived started", pid=self._proc.pid, interface=self.interface, vip=self.config.ha.virtual_ip)

    async def _pump_output(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            if line:
                self._tail.append(line)
                log.debug("keepalived", line=line)

    async def _supervise(self) -> None:
        def exited_with(code: int, backoff: float) -> None:
            self.restarts += 1
            log.error("keepalived exited; restarting", code=code, backoff_s=backoff, tail="\n".join(self._tail))
            self._set_state("STOP")

        await keep_running(
            lambda: self._proc, lambda: self._stopping, exited_with, lambda _: self._spawn(), HaError, "keepalived"
        )

    async def stop(self) -> None:
        """Stop keepalived (SIGTERM: it gives the address away), then SIGKILL after a grace period."""
        self._stopping = True
        if self._fifo is not None:  # its last words (STOP) change nothing now: the daemon is going
            asyncio.get_running_loop().remove_reader(self._fifo)
            os.close(self._fifo)
            self._fifo = None
        await stop_child(self._proc, STOP_TIMEOUT, "keepalived")
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._events:  # written before the daemon closes the store
            await asyncio.wait(self._events, timeout=STOP_TIMEOUT)

    def status(self) -> dict[str, Any]:
        """The pair as `lifeline status` shows it."""
        ha = self.config.ha
        if not ha.enabled:
            return {"role": "off", "peer": None}
        return {
            "role": self.role,
            "since": self.since,
            "peer": ha.peer,
            "virtual_ip": ha.virtual_ip,
            "interface": self.interface,
            "keepalived": {
                "running": self.running,
                "pid": self.pid,
                "restarts": self.restarts,
                "vrrp_state": self.state,
            },
        }
