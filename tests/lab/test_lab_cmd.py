"""`lifeline lab --quick --json` as a user runs it: the whole story passes, and nothing of it is left after."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab builds network namespaces (root, as CI has)")

STEPS = 14  # the story's steps (gateway/lab/story.py)


@pytest.fixture
def tmpdir_env() -> Iterator[Path]:
    """A short TMPDIR of its own, so the lab's temporary directory can be seen to go."""
    path = Path(tempfile.mkdtemp(prefix="lt-", dir="/tmp"))
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)


class Lab:
    """`lifeline lab` running: stderr read line by line as it comes, stdout kept."""

    def __init__(self, tmpdir: Path, report: Path) -> None:
        env = {**os.environ, "TMPDIR": str(tmpdir)}
        cmd = [sys.executable, "-m", "gateway", "lab", "--quick", "--json", "--report", str(report)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[str] = []
        self.stdout: list[str] = []
        self.changed = threading.Condition()
        self.readers = [
            threading.Thread(target=self._read, daemon=True),
            threading.Thread(target=self._out, daemon=True),
        ]
        for reader in self.readers:
            reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()

    def _out(self) -> None:
        assert self.proc.stdout is not None
        self.stdout.extend(self.proc.stdout)

    def wait_line(self, pattern: str, count: int = 1, timeout: float = 120) -> None:
        """Until `count` stderr lines match pattern (or the command ended)."""
        with self.changed:
            ok = self.changed.wait_for(
                lambda: sum(bool(re.search(pattern, x)) for x in self.lines) >= count or self.proc.poll() is not None,
                timeout,
            )
        assert ok, f"no {count}× {pattern!r} within {timeout:.0f} s:\n" + "\n".join(self.lines[-30:])

    def finish(self, timeout: float) -> tuple[int, dict[str, object]]:
        """Exit code and the JSON summary (stdout's last line)."""
        code = self.proc.wait(timeout)
        for reader in self.readers:  # both pipes read to their end: every line is in
            reader.join(10)
        last = [line for line in self.stdout if line.strip()][-1]
        return code, json.loads(last)

    def built(self) -> tuple[str, list[str]]:
        """The work directory and namespaces the lab announced."""
        found = next(m for x in self.lines if (m := re.match(r"lab: work directory (\S+); namespaces (.+)$", x)))
        return found.group(1), found.group(2).split()


def leftovers(workdir: str, namespaces: list[str], tmpdir: Path) -> list[str]:
    """Anything of the lab still there: namespaces, processes naming its files or namespaces, files."""
    found = []
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    found += [f"namespace {ns}" for ns in namespaces if re.search(rf"^{ns}\b", listed, re.MULTILINE)]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if workdir in cmdline or any(ns in cmdline for ns in namespaces):
            found.append(f"process {proc.name}: {cmdline[:200]}")
    found += [f"file {p}" for p in tmpdir.iterdir()]
    return found


def test_the_quick_story_passes_every_step_and_leaves_nothing(tmpdir_env: Path, tmp_path: Path) -> None:
    report = tmp_path / "lab.html"
    lab = Lab(tmpdir_env, report)
    code, summary = lab.finish(timeout=240)
    print("\n".join(lab.lines))
    steps, figures = summary["steps"], summary["figures"]
    assert isinstance(steps, list) and isinstance(figures, dict)
    assert [s["name"] for s in steps if not s["ok"]] == [], steps
    assert len(steps) == STEPS and code == 0
    assert figures["records_delivered"] == figures["survival_calls"] >= 4
    assert figures["calls_dropped_at_failback"] == 0
    assert figures["attacker_banned"] is True
    assert figures["cut_to_first_call_answered_s"] > 0 and figures["cut_to_survival_s"] > 0
    assert figures["restore_to_normal_s"] >= 2.0  # the quick run's hold-down
    page = report.read_text()
    assert 'id="verdict" class="ok">PASS<' in page and '<svg id="timeline"' in page
    assert page.count("<rect ") == STEPS
    workdir, namespaces = lab.built()
    assert leftovers(workdir, namespaces, tmpdir_env) == []


def test_ctrl_c_at_a_random_step_stops_promptly_and_leaves_nothing(tmpdir_env: Path, tmp_path: Path) -> None:
    seed = int(os.environ.get("LAB_SIGINT_SEED", random.randrange(1_000_000)))
    step = random.Random(seed).randrange(STEPS)
    print(f"seed {seed}: SIGINT once step {step + 1} of {STEPS} has started (LAB_SIGINT_SEED={seed} repeats it)")
    lab = Lab(tmpdir_env, tmp_path / "lab.html")
    lab.wait_line(r"\] ▶ ", count=step + 1)
    assert lab.proc.poll() is None, "the story ended before the chosen step:\n" + "\n".join(lab.lines)
    lab.proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    code, summary = lab.finish(timeout=60)
    took = time.monotonic() - sent
    print("\n".join(lab.lines))
    print(f"exited {code} {took:.1f} s after SIGINT")
    assert code == 130 and summary["interrupted"] is True
    assert took < 45
    workdir, namespaces = lab.built()
    assert leftovers(workdir, namespaces, tmpdir_env) == []
