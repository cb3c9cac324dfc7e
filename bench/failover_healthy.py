"""bench/failover's healthy-cloud phase: many calls through a far but healthy cloud, none may be served locally.

The cloud is 100 ms ± 30 ms away. This kernel has no sch_netem (`tc qdisc add … netem` is unknown), so
the lab cloud's Kamailio makes the delay itself: each request it receives (the probes' OPTIONS and the
INVITEs alike) is handled after a sleep drawn anew for that request, uniform within rtt ± jitter. That
is one whole round trip, added before the cloud's first answer to anything: the 100 Trying, a 407, the
probe's 200. Each answer it relays (the callee's 200) sleeps as long again: its way back across the
WAN. Each worker sleeps its request out, so the cloud gets enough workers that no request ever
queues behind another's sleep (queueing would add delay a WAN does not).

A false local delivery is a call Lifeline served itself while the cloud would have answered. Two
observers count it: the callee (sipp) logs each INVITE's Record-Route, and an INVITE that came through
the cloud carries the cloud's (the cloud records its route on every INVITE); and Lifeline's own log
line for a per-request fallback ("…; serving … locally").
"""

from __future__ import annotations

import contextlib
import re
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from gateway.lab.branch import BranchLab

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
CALLER, CALLEE = "1001", "1002"
CALLER_PORT, CALLEE_PORT = 5080, 5070
# Five probes answered: the first sets the smoothed RTT to what it measured, four more shrink the
# variation from half the RTT towards the jitter's (RFC 6298), so the wait is what a settled branch has.
SETTLE_PROBES = 5
# Every request and relayed answer sleeps ~0.1 s in a cloud worker, about seven per call: 64 workers
# keep up with 60 calls/s without a request ever waiting for a free one.
CLOUD_WORKERS = 64
TRACE_ENTRY = re.compile(r"^-{20,} .*$", re.MULTILINE)


def percentile(values: list[float], q: float) -> float:
    """The q-quantile, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def sipp_stats(stat: Path) -> dict[str, str]:
    """sipp's last statistics row (-trace_stat), by column."""
    rows = [line.split(";") for line in stat.read_text().splitlines() if line.strip()]
    return dict(zip(rows[0], rows[-1], strict=False))


def injection(path: Path, user: str, password: str, cloud: str) -> Path:
    """A one-line sipp injection file: user, credentials, the cloud's address, the callee."""
    path.write_text(f"SEQUENTIAL\n{user};[authentication username={user} password={password}];{cloud};{CALLEE}\n")
    return path


class HealthyCloud:
    """A branch whose cloud is far but healthy; a sipp caller and callee on its LAN."""

    def __init__(self, workdir: Path, tag: str, passwords: dict[str, str], delay_ms: tuple[int, int]) -> None:
        self.workdir, self.passwords, self.delay_ms = workdir, passwords, delay_ms
        self.lab = BranchLab(workdir / "lab", tag, passwords, cloud_delay_ms=delay_ms, cloud_children=CLOUD_WORKERS)
        a = self.lab.addr
        # One sipp address places every call, hundreds of requests a second: the phones' flood limit
        # is meant for one phone's worth of traffic, not a thousand phones' on one address.
        sip = {"listen": a.branch_lan, "port": 5060, "transports": ["udp"], "children": 2, "flood_limit": 100000}
        self.lab.sections = {"sip": sip}
        self.target = f"{a.branch_lan}:5060"

    def sipp(self, *args: str, timeout: float) -> subprocess.CompletedProcess[bytes]:
        """Run sipp in the phones' namespace until it ends."""
        cmd = [*self.lab.topology.exec_prefix("ph"), "sipp", self.target, "-i", self.lab.addr.phone, "-nostdin", *args]
        return subprocess.run(cmd, cwd=self.workdir, capture_output=True, timeout=timeout, check=False)

    def register(self, user: str, port: int) -> None:
        """Register `user` through Lifeline from the port its calls use."""
        inf = injection(self.workdir / f"reg-{user}.csv", user, self.passwords[user], self.lab.addr.cloud)
        done = self.sipp("-sf", str(SCENARIOS / "healthy_register.xml"), "-inf", str(inf), "-p", str(port),
                         "-m", "1", "-timeout", "15s", "-timeout_error", timeout=30)  # fmt: skip
        if done.returncode != 0:
            raise AssertionError(f"{user} did not register through Lifeline: {done.stdout[-500:]!r}")

    def settle(self, timeout: float = 30) -> dict[str, Any]:
        """Wait until the SIP probe has SETTLE_PROBES answers; returns Lifeline's health then."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            health: dict[str, Any] = self.lab.status()["health"]
            sip = [p for p in health["probes"].values() if p["kind"] == "sip"]
            if sip and sip[0]["samples"] >= SETTLE_PROBES and sip[0]["loss"] == 0 and health["cloud_srtt_ms"]:
                return health
            time.sleep(0.2)
        raise AssertionError(f"the probes did not settle within {timeout:.0f} s: {self.lab.status()['health']}")

    def run(self, calls: int, rate: int) -> dict[str, Any]:
        """Register both ends, let the probes settle, place `calls` calls; the figures."""
        self.lab.start()
        self.register(CALLEE, CALLEE_PORT)
        self.register(CALLER, CALLER_PORT)
        before = self.settle()
        uas_log = self.workdir / "callee-messages.log"
        callee = subprocess.Popen(
            [*self.lab.topology.exec_prefix("ph"), "sipp", "-sf", str(SCENARIOS / "healthy_uas.xml"), "-i",
             self.lab.addr.phone, "-p", str(CALLEE_PORT), "-nostdin", "-trace_msg", "-message_file", str(uas_log)],
            cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            inf = injection(self.workdir / "caller.csv", CALLER, self.passwords[CALLER], self.lab.addr.cloud)
            stat = self.workdir / "caller-stat.csv"
            started = time.monotonic()
            self.sipp("-sf", str(SCENARIOS / "healthy_uac.xml"), "-inf", str(inf), "-p", str(CALLER_PORT),
                      "-m", str(calls), "-r", str(rate), "-l", str(4 * rate), "-trace_stat", "-stf", str(stat),
                      "-fd", "1", "-trace_rtt", "-rtt_freq", "1", "-timeout", f"{calls / rate + 60:.0f}s",
                      "-timeout_error", "-recv_timeout", "10s", timeout=calls / rate + 90)  # fmt: skip
            seconds = time.monotonic() - started
        finally:
            callee.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                callee.wait(10)
            if callee.poll() is None:
                callee.kill()
                callee.wait()
        after = self.lab.status()["health"]
        stats = sipp_stats(stat)
        setup = [float(line.split(";")[1]) / 1000 for rtt in self.workdir.glob("healthy_uac_*_rtt.csv")
                 for line in rtt.read_text().splitlines()[1:] if line.strip()]  # fmt: skip
        via_cloud, local = self.callee_invites(uas_log)
        assert self.lab.lifeline is not None
        fallbacks = sum(
            1 for line in self.lab.lifeline.log_path.read_text().splitlines() if "INVITE" in line and "locally" in line
        )
        rtt, jitter = self.delay_ms
        return {
            "healthy_cloud_rtt_ms": rtt,
            "healthy_cloud_jitter_ms": jitter,
            "healthy_calls": int(stats["OutgoingCall(C)"]),
            "healthy_calls_answered": int(stats["SuccessfulCall(C)"]),
            "healthy_calls_failed": int(stats["FailedCall(C)"]),
            "healthy_calls_per_s": round(int(stats["SuccessfulCall(C)"]) / seconds, 1),
            "false_local_deliveries": len(local),
            "false_local_deliveries_lifeline_log": fallbacks,
            "healthy_calls_via_cloud_at_callee": len(via_cloud),
            "healthy_call_setup_median_s": round(statistics.median(setup), 3) if setup else None,
            "healthy_call_setup_p95_s": round(percentile(setup, 0.95), 3) if setup else None,
            # What the probes had learnt when the first call left, and after the last.
            "healthy_cloud_srtt_ms_start": before["cloud_srtt_ms"],
            "healthy_cloud_srtt_ms_end": after["cloud_srtt_ms"],
            "healthy_fallback_wait_ms_start": before["fallback_wait_ms"],
            "healthy_fallback_wait_ms_end": after["fallback_wait_ms"],
        }

    def callee_invites(self, trace: Path) -> tuple[set[str], set[str]]:
        """Call-IDs the callee got through the cloud (its Record-Route), and those it got without."""
        cloud_route = re.compile(rf"<sip:{re.escape(self.lab.addr.cloud)}[;:>]")
        via_cloud: set[str] = set()
        local: set[str] = set()
        # sipp's trace: a dashed line with the time, "UDP message received …", a blank line, the message.
        for entry in TRACE_ENTRY.split(trace.read_text(errors="replace") if trace.exists() else ""):
            head, _, message = entry.partition("\n\n")
            if "received" not in head or not message.startswith("INVITE "):
                continue
            lines = message.splitlines()
            call_id = next((h.split(":", 1)[1].strip() for h in lines if h.lower().startswith("call-id:")), "")
            routes = " ".join(h for h in lines if h.lower().startswith("record-route:"))
            (via_cloud if cloud_route.search(routes) else local).add(call_id)
        return via_cloud, local  # a call the callee also got through the cloud was still served here

    def close(self) -> None:
        """Stop the branch."""
        self.lab.close()
