"""JSON-RPC client for Kamailio's jsonrpcs module over its unix datagram socket."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

from gateway.errors import RpcError

MAX_REPLY = 1 << 20


class KamailioRpc:
    """Calls Kamailio's RPC commands; one outstanding call at a time, each with a timeout."""

    def __init__(self, server: Path, timeout: float = 3.0) -> None:
        self.server = server
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()

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
        # Kamailio answers to the sender's address, so the client needs a bound socket of its own.
        with tempfile.TemporaryDirectory(prefix="llrpc") as tmp:
            path = os.path.join(tmp, "c")
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.bind(path)
                sock.settimeout(self.timeout)
                try:
                    sock.sendto(payload, str(self.server))
                    return sock.recv(MAX_REPLY)
                except TimeoutError as err:
                    raise RpcError(f"no reply on {self.server} within {self.timeout:.0f} s") from err
                except OSError as err:
                    raise RpcError(f"cannot reach Kamailio on {self.server}: {err}") from err
