"""JSON-RPC client for Kamailio's jsonrpcs module: its unix datagram socket, and its FIFO for long replies.

A datagram carries at most 64 KiB: `ul.dump` of about a hundred phones, or a ban list after a large
attack, is more, and Kamailio then drops the reply ("Message too long"). Those go over the FIFO,
whose reply (a FIFO of our own that Kamailio writes into) has no size limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import select
import socket
import time
from pathlib import Path
from typing import Any

from gateway.errors import RpcError

MAX_REPLY = 1 << 20
# The client sockets' names: one count for the process, as several clients (each with its own lock)
# may call at once, and a name taken twice would have one call remove the other's socket.
_names = itertools.count(1)


def item_value(result: Any) -> Any:
    """The value in a pv.shvGet or htable.get result (a list of one item, or {"item": …}); None if none."""
    entry = result[0] if isinstance(result, list) and result else result
    if isinstance(entry, dict) and isinstance(entry.get("item"), dict):
        entry = entry["item"]
    return entry.get("value") if isinstance(entry, dict) else None


class KamailioRpc:
    """Calls Kamailio's RPC commands; one outstanding call at a time, each with a timeout."""

    def __init__(self, server: Path, timeout: float = 3.0) -> None:
        self.server = server
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()
        self._bulk_lock = asyncio.Lock()

    @property
    def fifo(self) -> Path:
        """Kamailio's FIFO beside its socket (kamailio.cfg.tmpl: jsonrpcs fifo_name); replies come back beside it."""
        return self.server.with_suffix(".fifo")

    async def call_bulk(self, method: str, *params: Any) -> Any:
        """The same as call() for a reply of any length (over the FIFO); the datagram calls go on meanwhile."""
        async with self._bulk_lock:
            try:
                async with asyncio.timeout(self.timeout + 1):
                    return await asyncio.to_thread(self.call_bulk_blocking, method, *params)
            except TimeoutError as err:
                raise RpcError(f"{method}: Kamailio did not answer within {self.timeout:.0f} s") from err

    def call_bulk_blocking(self, method: str, *params: Any) -> Any:
        """call_bulk() for code that has no event loop."""
        reply_name = f"lifeline_reply_{os.getpid()}_{next(_names)}"  # Kamailio refuses a name with a dot or a slash
        request = {"jsonrpc": "2.0", "method": method, "params": list(params), "id": 1, "reply_name": reply_name}
        reply_path = self.fifo.with_name(reply_name)
        os.mkfifo(reply_path, 0o600)
        try:
            # Read-write: the open does not wait for Kamailio, and no end-of-file comes before its reply.
            reply_fd = os.open(reply_path, os.O_RDWR | os.O_NONBLOCK)
            try:
                self._send_fifo(json.dumps(request).encode() + b"\n")
                raw = self._read_document(reply_fd, method)
            finally:
                os.close(reply_fd)
        finally:
            reply_path.unlink(missing_ok=True)
        if "error" in raw:
            raise RpcError(f"{method}: {raw['error'].get('message', raw['error'])}")
        return raw.get("result")

    def _send_fifo(self, payload: bytes) -> None:
        try:
            fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO at once when nobody reads it
        except OSError as err:
            raise RpcError(f"cannot reach Kamailio on {self.fifo}: {err.strerror}") from err
        try:
            if os.write(fd, payload) != len(payload):
                raise RpcError(f"{self.fifo}: Kamailio's FIFO took only part of the request")
        except BlockingIOError as err:  # its FIFO is full: Kamailio is not reading
            raise RpcError(f"{self.fifo}: Kamailio is not reading its FIFO") from err
        except OSError as err:  # EPIPE: Kamailio stopped reading it between the open and the write
            raise RpcError(f"cannot reach Kamailio on {self.fifo}: {err.strerror}") from err
        finally:
            os.close(fd)

    def _read_document(self, fd: int, method: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        buffer = b""
        decoder = json.JSONDecoder()
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise RpcError(f"{method}: no reply on {self.fifo} within {self.timeout:.0f} s")
            with contextlib.suppress(BlockingIOError):
                buffer += os.read(fd, 1 << 16)
            try:
                document, _end = decoder.raw_decode(buffer.decode("utf-8", errors="replace").lstrip())
            except json.JSONDecodeError:
                continue  # more of it to come
            if not isinstance(document, dict):
                raise RpcError(f"{method}: unreadable reply from Kamailio: {buffer[:200]!r}")
            return document

    async def call(self, method: str, *params: Any) -> Any:
        """Call one RPC method and return its result; RpcError on error or timeout."""
        async with self._lock:
            try:
                async with asyncio.timeout(self.timeout + 1):
                    return await asyncio.to_thread(self.call_blocking, method, *params)
            except TimeoutError as err:
                raise RpcError(f"{method}: Kamailio did not answer within {self.timeout:.0f} s") from err

    def call_blocking(self, method: str, *params: Any) -> Any:
        """The same call for code that has no event loop (the lab, tests, benchmarks)."""
        request = {"jsonrpc": "2.0", "method": method, "params": list(params), "id": next(self._ids)}
        raw = self._exchange(json.dumps(request).encode())
        try:
            reply = json.loads(raw)
        except json.JSONDecodeError as err:
            raise RpcError(f"{method}: unreadable reply from Kamailio: {raw[:200]!r}") from err
        if "error" in reply:
            raise RpcError(f"{method}: {reply['error'].get('message', reply['error'])}")
        return reply.get("result")

    def _exchange(self, payload: bytes) -> bytes:
        # Kamailio answers to the sender's address, so the client needs a bound socket of its own: a
        # file beside Kamailio's (no directory to make and remove on every call), removed after. Not an
        # abstract name: those stay in one network namespace, and a lab's Kamailio runs in another.
        # Only a datagram from Kamailio's own path is taken for the reply.
        deadline = time.monotonic() + self.timeout
        path = self.server.with_name(f"c{os.getpid()}_{next(_names)}")
        path.unlink(missing_ok=True)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            try:
                sock.bind(str(path))
                sock.sendto(payload, str(self.server))
                while True:
                    sock.settimeout(max(deadline - time.monotonic(), 0.001))
                    reply, sender = sock.recvfrom(MAX_REPLY)
                    if sender == str(self.server):
                        return reply
            except TimeoutError as err:
                raise RpcError(f"no reply on {self.server} within {self.timeout:.0f} s") from err
            except OSError as err:
                raise RpcError(f"cannot reach Kamailio on {self.server}: {err}") from err
            finally:
                path.unlink(missing_ok=True)
