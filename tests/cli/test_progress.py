"""Progress of long CLI work: drawn on a terminal's stderr, never into --json, never when not on a terminal.

The commands run as the installer runs them, in a subprocess whose stderr (and stdout, where it matters)
is a pseudo-terminal; their output is compared with what the same command writes into a pipe.
"""

from __future__ import annotations

import io
import json
import os
import pty
import re
import subprocess
import sys
import threading
from pathlib import Path

from rich.console import Console

from gateway.cdr.csvfile import export_final
from gateway.cdr.labsink import seed_records
from gateway.cli.progress import Meter
from gateway.lab.daemon import LifelineProcess
from gateway.store import Store

RECORDS = 1234  # more than one chunk of the export


def run(daemon: LifelineProcess, *args: str, tty_out: bool = False, tty_err: bool = True) -> tuple[int, str, str]:
    """Run `lifeline ARGS`; stdout and stderr each a pseudo-terminal or a pipe. (code, stdout, stderr)."""
    cmd = [sys.executable, "-m", "gateway", "--config", str(daemon.config_path), *args]
    ptys = {name: pty.openpty() for name, wanted in (("out", tty_out), ("err", tty_err)) if wanted}
    env = {**os.environ, "COLUMNS": "100", "TERM": "xterm-256color"}  # a dumb terminal gets no live redraws
    env.pop("FORCE_COLOR", None)
    with subprocess.Popen(
        cmd,
        stdout=ptys["out"][1] if "out" in ptys else subprocess.PIPE,
        stderr=ptys["err"][1] if "err" in ptys else subprocess.PIPE,
        env=env,
    ) as proc:
        for _, slave in ptys.values():
            os.close(slave)
        got: dict[str, str] = {}
        # Each terminal is read in a thread of its own while communicate() empties the pipes: none fills up.
        readers = [threading.Thread(target=_drain, args=(master, got, name)) for name, (master, _) in ptys.items()]
        for reader in readers:
            reader.start()
        out, err = proc.communicate(timeout=120)
        for reader in readers:
            reader.join(timeout=30)
    piped = {"out": (out or b"").decode(), "err": (err or b"").decode()}
    return proc.returncode, got.get("out", piped["out"]), got.get("err", piped["err"])


def _drain(master: int, into: dict[str, str], name: str) -> None:
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every writer of the terminal is gone
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    into[name] = b"".join(chunks).decode(errors="replace")


def test_a_meter_draws_only_on_a_terminal() -> None:
    drawn = io.StringIO()
    meter = Meter(Console(file=drawn, force_terminal=True, width=100), "exporting call records")
    meter(0, 3)
    meter(3, 3)
    meter.close()
    assert meter.shown and "exporting call records" in drawn.getvalue() and "3/3" in drawn.getvalue()
    silent = Meter(None, "exporting call records")
    silent(1, 3)
    silent.describe("writing")
    silent.close()
    assert not silent.shown


def test_cdr_export_shows_progress_on_the_terminal_and_writes_the_same_csv(tmp_path: Path) -> None:
    daemon = LifelineProcess(tmp_path, {})
    store = Store(daemon.workdir / "data" / "lifeline.db")
    try:
        seed_records(store, RECORDS, [])
        _, expected = export_final(store)
    finally:
        store.close()
    code, csv, err = run(daemon, "cdr", "export")  # stdout into a pipe (a file), stderr on a terminal
    assert code == 0 and csv == expected  # the CSV, byte for byte, with nothing of the progress in it
    assert "exporting call records" in err and f"{RECORDS}/{RECORDS}" in err
    code, csv, err = run(daemon, "cdr", "export", tty_err=False)
    assert code == 0 and csv == expected and err == ""  # no terminal: no progress at all
    out = tmp_path / "export.csv"
    code, _, err = run(daemon, "cdr", "export", "--out", str(out))
    assert code == 0 and out.read_text() == expected
    assert f"{RECORDS}/{RECORDS}" in err and err.rstrip().endswith(f"exported {RECORDS} record(s) to {out}")


def test_mirror_sync_json_stays_json_on_a_terminal_and_shows_progress_without_it(tmp_path: Path) -> None:
    phones = tmp_path / "phones.csv"
    phones.write_text("number,password,name\n" + "".join(f"{2000 + n},secret-{n:04},Ext {n}\n" for n in range(40)))
    daemon = LifelineProcess(tmp_path / "box", {"mirror": {"source": "file", "file": str(phones)}})
    code, out, err = run(daemon, "mirror", "sync", "--json", tty_out=True)
    assert code == 0, err
    result = json.loads(out)  # the whole terminal output of stdout is the one JSON document
    assert (result["added"], result["via"]) == (40, "store")
    assert "fetching" not in err and "\x1b[" not in err  # only the log's line: no bar, no terminal codes
    code, out, err = run(daemon, "mirror", "sync", "--full", tty_out=True)
    assert code == 0 and "fetching the directory" in err and "40/40" in err
    assert "full sync: no change, 40 extensions" in out and "fetching" not in out


def test_drill_json_stays_json_on_a_terminal_and_a_drill_at_a_terminal_shows_its_step(tmp_path: Path) -> None:
    drill = tmp_path / "drill.csv"
    drill.write_text("number,password\n1901,drill-caller-secret-1901\n1902,drill-callee-secret-1902\n")
    daemon = LifelineProcess(
        tmp_path / "box", {"sip": {"listen": "127.0.0.1", "children": 2}, "drill": {"caller": "1901", "callee": "1902"}}
    )
    daemon.cli("extensions", "import", str(drill))
    daemon.start()
    try:
        code, out, err = run(daemon, "drill", "--json", tty_out=True)
        assert code == 0, out + err
        report = json.loads(out)  # stdout on a terminal holds nothing but the report
        assert report["passed"] is True and "\x1b[" not in out
        assert "drill:" not in err and "\x1b[" not in err
        code, out, err = run(daemon, "drill", tty_out=True)
        assert code == 0, out + err
        # The spinner names the step under way (redrawn ten times a second: a step of milliseconds may be skipped).
        assert re.search(r"drill: (snapshot|failing over|checking|failing back|checking records|done)", err), err
        # While the spinner runs, rich draws the timeline's lines above it (both are the one terminal then).
        assert "every check passed" in out + err and "drill " in out and ": PASS" in out
        # Into a pipe (the monthly timer's journal): the same lines, no terminal codes anywhere.
        code, out, err = run(daemon, "drill", tty_err=False)
        assert code == 0 and "every check passed" in out and "\x1b[" not in out + err
    finally:
        daemon.stop()
