"""`lifeline ha check`: may this box hold the virtual address? Kamailio answers and the store is writable."""

# keepalived runs this file every few seconds by its path, under the interpreter's real path (it
# resolves symlinks, so a venv's packages are not there): the standard library only, and no import
# of the gateway package, whose logging setup alone costs a Pi a fifth of a second each time.
from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import sys
from pathlib import Path

RPC_TIMEOUT_S = 1.0  # keepalived kills the check after CHECK_TIMEOUT_S; ours end first with a reason
DB_TIMEOUT_S = 1.0


def kamailio_answers(rpc_socket: Path) -> str | None:
    """None if Kamailio answers RPC (core.version, as the daemon asks at start), else why not."""
    # The same exchange as gateway.sip.rpc.KamailioRpc: a bound socket of our own beside Kamailio's.
    request = json.dumps({"jsonrpc": "2.0", "method": "core.version", "id": 1}).encode()
    path = rpc_socket.with_name(f"hc{os.getpid()}")
    path.unlink(missing_ok=True)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(str(path))
            sock.settimeout(RPC_TIMEOUT_S)
            sock.sendto(request, str(rpc_socket))
            reply = json.loads(sock.recv(1 << 16))
    except TimeoutError:
        return f"kamailio: no reply on {rpc_socket} within {RPC_TIMEOUT_S:.0f} s"
    except (OSError, ValueError) as err:
        return f"kamailio: cannot reach it on {rpc_socket}: {err}"
    finally:
        path.unlink(missing_ok=True)
    return None if isinstance(reply, dict) and "result" in reply else f"kamailio: RPC answered {reply!r:.200}"


def store_writable(db_path: Path) -> str | None:
    """None if the store takes a write lock (nothing is written), else why not."""
    if not db_path.exists():
        return f"store: {db_path} does not exist"
    try:
        if os.statvfs(db_path).f_flag & os.ST_RDONLY:
            return f"store: {db_path} is on a read-only file system"
        # mode=rw: never create it; BEGIN IMMEDIATE takes the write lock, as a registration's write would.
        db = sqlite3.connect(f"file:{db_path}?mode=rw", uri=True, timeout=DB_TIMEOUT_S, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")
        finally:
            db.close()
    except (OSError, sqlite3.Error) as err:
        return f"store: {db_path}: {err}"
    return None


def problems(rpc_socket: Path, db_path: Path) -> list[str]:
    """Why this box must not hold the address; empty when it may."""
    return [p for p in (kamailio_answers(rpc_socket), store_writable(db_path)) if p is not None]


def main(argv: list[str] | None = None) -> int:
    """keepalived's track script: exit 0 when well, 1 (reasons on stderr) when not."""
    parser = argparse.ArgumentParser(prog="python -m gateway.ha.check")
    parser.add_argument("--rpc", type=Path, required=True, help="Kamailio's RPC socket")
    parser.add_argument("--db", type=Path, required=True, help="the store")
    args = parser.parse_args(argv)
    found = problems(args.rpc, args.db)
    for problem in found:
        print(f"lifeline ha check: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
