"""Timestamps stay right when the wall clock is 1970 after a power cut: modem time, then monotonic, then corrected."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from gateway.cdr.acc import acc_path
from gateway.cdr.capture import Capture
from gateway.cdr.clock import BestClock, FakeClockSource
from gateway.cdr.records import ClockKind
from gateway.store import Store

TRUE_NOW = 1_764_064_800.0  # the real time of the outage (2025-11-25 10:00 UTC)
BOOT_WALL = 3600.0  # the Pi's clock after a power cut without a battery: 1970


@dataclass
class FakeHost:
    """A machine whose wall clock says 1970 and whose monotonic clock the test advances."""

    mono_s: float = 100.0
    boot: str = "boot-1"

    def wall(self) -> float:
        return BOOT_WALL + self.mono_s

    def mono(self) -> float:
        return self.mono_s

    def boot_id(self) -> str:
        return self.boot


def kamailio_event(path: Path, call: str, method: str, code: str, wall: float) -> None:
    """An acc row as Kamailio writes it (time_attr = its 1970 wall clock)."""
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO acc (method, from_tag, to_tag, callid, sip_code, sip_reason, time_attr, src_user, dst_user,"
            " start_time, cdr_mode) VALUES (?, 'ft', 'tt', ?, ?, '', ?, '1001', '1002', ?, 'survival')",
            [method, call, code, wall, f"{wall:.6f}" if method == "INVITE" else None],
        )


def records(store: Store) -> dict[str, dict[str, object]]:
    with store.read() as conn:
        cur = conn.execute("SELECT call_id, start_ts, answer_ts, end_ts, clock_source FROM cdrs")
        return {r[0]: {"start": r[1], "answer": r[2], "end": r[3], "clock": r[4]} for r in cur.fetchall()}


def test_restart_with_a_1970_clock_uses_modem_time_then_monotonic_then_corrects_with_ntp(tmp_path: Path) -> None:
    host = FakeHost()
    network_up = {"on": True}
    ntp_up = {"on": False}

    def network() -> float | None:  # the modem's network time (AT+CCLK), right to the second
        return TRUE_NOW + (host.mono_s - 100.0) if network_up["on"] else None

    def ntp() -> float | None:
        return TRUE_NOW + (host.mono_s - 100.0) if ntp_up["on"] else None

    def daemon() -> tuple[Store, Capture]:
        store = Store(tmp_path / "lifeline.db")
        clock = BestClock(
            host, [FakeClockSource(ClockKind.NTP, ntp), FakeClockSource(ClockKind.NETWORK, network)], store
        )
        capture = Capture(store, clock, ["webhook"])
        capture.prepare()
        return store, capture

    store, capture = daemon()
    path = acc_path(store.path)
    # A call while the modem gives network time.
    kamailio_event(path, "c1", "INVITE", "100", host.wall())
    host.mono_s += 2
    kamailio_event(path, "c1", "INVITE", "200", host.wall())
    host.mono_s += 30
    kamailio_event(path, "c1", "BYE", "200", host.wall())
    capture.step()
    c1 = records(store)["c1"]
    assert c1["clock"] == "network"
    assert c1["start"] == TRUE_NOW and c1["answer"] == TRUE_NOW + 2 and c1["end"] == TRUE_NOW + 32

    # The daemon restarts (same boot); the modem has lost its network time too.
    store.close()
    network_up["on"] = False
    host.mono_s += 100
    store, capture = daemon()
    kamailio_event(acc_path(store.path), "c2", "INVITE", "100", host.wall())
    host.mono_s += 1
    kamailio_event(acc_path(store.path), "c2", "INVITE", "486", host.wall())
    capture.step()
    c2 = records(store)["c2"]
    assert c2["clock"] == "monotonic"
    assert c2["start"] == TRUE_NOW + 132 and c2["end"] == TRUE_NOW + 133  # from the persisted anchor

    # A reboot loses the monotonic reference: the record says so rather than inventing a time.
    store.close()
    host.boot, host.mono_s = "boot-2", 20.0
    store, capture = daemon()
    kamailio_event(acc_path(store.path), "c3", "INVITE", "404", host.wall())
    capture.step()
    c3 = records(store)["c3"]
    assert c3["clock"] == "unsynced" and c3["start"] == BOOT_WALL + 20.0

    # NTP returns in this boot: the unsynced record is corrected before it is delivered.
    host.mono_s += 10
    ntp_up["on"] = True  # ntp() maps mono to true time as if the outage started at mono 100
    assert capture.correct_clock() == 1
    c3 = records(store)["c3"]
    assert c3["clock"] == "ntp" and c3["start"] == TRUE_NOW + (20.0 - 100.0)
    assert records(store)["c1"]["clock"] == "network"  # better-stamped records are left alone
    store.close()
