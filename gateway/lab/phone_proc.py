"""A phone in a process of its own, for tests that need two separate SIP user agents.

pjsua2 allows one endpoint per process, and one endpoint answers a forked INVITE's second leg
with 482 (merged request), as RFC 3261 says a single UA should. A ring group test needs two
phones that are really two. This one registers, answers every call after `--answer-after`
seconds, and reports on stdout, one JSON object per line: registered, ringing, confirmed,
disconnected. It hangs up when told `hangup` on stdin and exits on `quit` or end of input.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import select
import subprocess
import sys
import threading
import time

from gateway.lab.phones import Phone, SipEndpoint


def emit(event: str, **data: object) -> None:
    """One event line on stdout."""
    print(json.dumps({"event": event, **data}), flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the phone until told to quit."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--user", required=True)
    parser.add_argument("--password-env", default="LAB_PHONE_PASSWORD", help="environment variable with the password")
    parser.add_argument("--domain", required=True)
    parser.add_argument("--registrar", required=True)
    parser.add_argument("--proxy")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--answer-after", type=float, default=0.5)
    args = parser.parse_args(argv)
    ep = SipEndpoint()
    try:
        phone: Phone = ep.phone(
            args.user, os.environ[args.password_env], domain=args.domain, registrar=args.registrar,
            proxy=args.proxy, host=args.host,
        )  # fmt: skip
        emit("registered", code=phone.register())
        serve(ep, phone, args.answer_after)
    finally:
        ep.close()  # whatever state the calls are in (gateway.pjsafe)
    return 0


def serve(ep: SipEndpoint, phone: Phone, answer_after: float) -> None:
    """Answer, report and hang up until told to quit."""
    seen: dict[int, str] = {}
    rang_at: dict[int, float] = {}
    while True:
        ep.pump(20)
        for index, call in enumerate(phone.incoming):
            state = call.state  # as last delivered: no pjsua2 call is touched for it
            if index not in rang_at:
                rang_at[index] = time.monotonic()
                emit("ringing", call=index)
            if state in ("INCOMING", "EARLY") and time.monotonic() - rang_at[index] >= answer_after:
                call.answer_with(200)
            if seen.get(index) != state and state in ("CONFIRMED", "DISCONNECTED"):
                emit(state.lower(), call=index, code=call.record.last_code)
            seen[index] = state
        if select.select([sys.stdin], [], [], 0)[0]:
            line = sys.stdin.readline()
            if line.strip() == "hangup":
                for call in phone.incoming:
                    if call.state == "CONFIRMED":
                        call.hang_up()
            elif line == "" or line.strip() == "quit":
                return


if __name__ == "__main__":
    sys.exit(main())


class PhoneProcess:
    """Runs `python -m gateway.lab.phone_proc` and waits for its events."""

    def __init__(self, user: str, password: str, **options: str | float) -> None:
        cmd = [sys.executable, "-m", "gateway.lab.phone_proc", "--user", user]
        for key, value in options.items():
            cmd += [f"--{key.replace('_', '-')}", str(value)]
        env = {**os.environ, "LAB_PHONE_PASSWORD": password}
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
        )
        self.events: queue.Queue[dict[str, object]] = queue.Queue()
        self.seen: list[dict[str, object]] = []

        def pump() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                if line.startswith("{"):
                    self.events.put(json.loads(line))

        threading.Thread(target=pump, daemon=True).start()

    def has(self, event: str) -> bool:
        """Whether the phone has reported this event yet (never blocks: pump your own phones meanwhile)."""
        while True:
            try:
                self.seen.append(self.events.get_nowait())
            except queue.Empty:
                return any(item["event"] == event for item in self.seen)

    def wait(self, event: str, timeout: float = 15.0) -> dict[str, object]:
        """The next event of this kind (earlier ones of other kinds are kept in `seen`)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                item = self.events.get(timeout=left)
            except queue.Empty:
                break
            self.seen.append(item)
            if item["event"] == event:
                return item
        raise AssertionError(f"phone process: no {event!r} within {timeout:.0f} s (saw {self.seen})")

    def send(self, command: str) -> None:
        """Tell the phone to `hangup` or `quit`."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        """Quit and reap the process."""
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
