"""Runs the drill's user agent (gateway.drill.ua) as a child process and reads its events as they come."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections import deque
from collections.abc import Callable
from typing import Any

from gateway.children import die_with_parent
from gateway.errors import LifelineError


class DrillError(LifelineError):
    """A drill could not start, or one of its steps could not run."""


async def _keep_tail(stream: asyncio.StreamReader, tail: deque[str]) -> None:
    async for raw in stream:
        line = raw.decode(errors="replace").rstrip()
        if line:
            tail.append(line)


async def run_user_agent(
    spec: dict[str, Any], limit_s: float, on_event: Callable[[dict[str, Any]], None]
) -> list[dict[str, Any]]:
    """Start the drill's UA with spec on stdin (it holds digests: never argv); its events, each also to on_event."""
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway.drill.ua",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=die_with_parent,
        )
    except OSError as err:
        raise DrillError(f"cannot start the drill's SIP user agent: {err}") from err
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    tail: deque[str] = deque(maxlen=20)
    stderr = asyncio.create_task(_keep_tail(proc.stderr, tail))
    events: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(limit_s):
            proc.stdin.write(json.dumps(spec).encode() + b"\n")
            await proc.stdin.drain()
            proc.stdin.close()
            async for raw in proc.stdout:
                line = raw.decode(errors="replace").strip()
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if isinstance(event, dict):
                    events.append(event)
                    on_event(event)
            await proc.wait()
    except TimeoutError as err:
        raise DrillError(f"the drill's SIP user agent did not finish within {limit_s:.0f} s") from err
    except OSError as err:
        raise DrillError(f"lost the drill's SIP user agent: {err}") from err
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        await asyncio.wait({stderr}, timeout=1.0)  # the rest of its stderr, for the error below
        stderr.cancel()
    errors = [str(e.get("error")) for e in events if e.get("event") == "error"]
    if errors or not any(e.get("event") == "done" for e in events):
        detail = "; ".join(errors) or " | ".join(list(tail)[-3:]) or "no output"
        raise DrillError(f"the drill's SIP user agent failed (exit code {proc.returncode}): {detail}")
    return events
