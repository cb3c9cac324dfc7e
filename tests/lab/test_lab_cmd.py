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

STEPS = 14  # the story's steps (gateway/lab/story.py)
NOBODY = 65534
# The lab as root (network namespaces), and as a user without root (loopback addresses, a frozen cloud):
# run by nobody when the tests have root to give up, as they are otherwise.
FORMS = [
    pytest.param("netns", marks=pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")),
    "loopback",
]


@pytest.fixture
def tmpdir_env() -> Iterator[Path]:
    """A short TMPDIR of its own, so the lab's temporary directory can be seen to go (nobody may write there)."""
    path = Path(tempfile.mkdtemp(prefix="lt-", dir="/tmp"))
    if os.geteuid() == 0:
        os.chown(path, NOBODY, NOBODY)
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)


def as_user(form: str) -> list[str]:
    """The command prefix that runs the lab in this form: nobody's, when the loopback form runs as root."""
    if form != "loopback" or os.geteuid() != 0:
        return []
    nobody = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    spawns = "import subprocess, sys; subprocess.run([sys.executable, '-c', ''], check=True)"  # as the lab does
    if subprocess.run([*nobody, "--", sys.executable, "-c", spawns], capture_output=True, check=False).returncode:
        # An interpreter nobody cannot reach (pyenv under /root, mode 700): nobody gets to read files, and
        # nothing else (no network capability: not CAP_NET_ADMIN, CAP_NET_RAW, CAP_NET_BIND_SERVICE).
        print(f"{sys.executable} is out of nobody's reach: the lab runs as nobody with CAP_DAC_READ_SEARCH")
        nobody += ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
    return [*nobody, "--"]


class Lab:
    """`lifeline lab` running: stderr read line by line as it comes, stdout kept."""

    def __init__(self, tmpdir: Path, report: Path, form: str) -> None:
        env = {**os.environ, "TMPDIR": str(tmpdir), "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        cmd = [*as_user(form), sys.executable, "-m", "gateway", "lab", "--quick", "--json", "--report", str(report)]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmpdir
        )
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
        return found.group(1), [] if "loopback" in found.group(2) else found.group(2).split()


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


@pytest.mark.parametrize("form", FORMS)
def test_the_quick_story_passes_every_step_and_leaves_nothing(form: str, tmpdir_env: Path) -> None:
    report = tmpdir_env / "lab.html"
    lab = Lab(tmpdir_env, report, form)
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
    # Delivered after the WAN returned, the last before the step waiting for them gave up (30 s).
    assert 0 < figures["restore_to_records_delivered_s"] < 30
    assert figures["records_per_s_restore_to_last_delivered"] == pytest.approx(
        figures["records_delivered"] / figures["restore_to_records_delivered_s"], rel=0.01
    )
    # Audio there and back between two phones on one box: more than a 20 ms frame, less than a second.
    assert 20 < figures["audio_round_trip_ms_phone_to_echoing_phone"] < 1000
    assert figures["audio_round_trip_samples"] >= 2
    assert ("loopback" in steps[0]["detail"]) == (form == "loopback"), steps[0]
    page = report.read_text()
    report.unlink()
    assert 'id="verdict" class="ok">PASS<' in page and '<svg id="timeline"' in page
    assert page.count("<rect ") == STEPS
    workdir, namespaces = lab.built()
    assert leftovers(workdir, namespaces, tmpdir_env) == []


@pytest.mark.parametrize("form", FORMS)
def test_ctrl_c_at_a_random_step_stops_promptly_and_leaves_nothing(form: str, tmpdir_env: Path) -> None:
    seed = int(os.environ.get("LAB_SIGINT_SEED", random.randrange(1_000_000)))
    step = random.Random(seed).randrange(STEPS)
    print(f"seed {seed}: SIGINT once step {step + 1} of {STEPS} has started (LAB_SIGINT_SEED={seed} repeats it)")
    lab = Lab(tmpdir_env, tmpdir_env / "lab.html", form)
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
    (tmpdir_env / "lab.html").unlink(missing_ok=True)
    workdir, namespaces = lab.built()
    assert leftovers(workdir, namespaces, tmpdir_env) == []
