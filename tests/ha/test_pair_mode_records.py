"""The pair's records: encoded and read back; the newer override wins on both sides; the standby follows the active."""

from __future__ import annotations

from pathlib import Path

from gateway.cli.ha_cmd import status_lines
from gateway.core.mode import Mode, ModeController, Override
from gateway.ha.pair_mode import BoxRecord, PairModeSync, key
from gateway.store import Store


class Table:
    """Two boxes' Kamailio tables, each write copied to the other at once (what DMQ does, minus the wire)."""

    def __init__(self, shared: dict[str, str]) -> None:
        self.items = shared

    async def read(self) -> dict[str, str]:
        return dict(self.items)

    async def write(self, name: str, value: str) -> None:
        self.items[name] = value

    async def peer_link(self, peer: str) -> str | None:
        return "active"


def test_a_record_reads_back_exactly_and_garbage_is_none() -> None:
    record = BoxRecord(1700000000.123, "active", Mode.SURVIVAL, Override.AUTO, 1700000000.1234567)
    assert BoxRecord.decode(record.encode()) == record
    assert BoxRecord.decode(None) is None and BoxRecord.decode("1 active nonsense auto 0") is None


async def test_the_standby_follows_and_an_override_from_either_box_holds_on_both(tmp_path: Path) -> None:
    shared: dict[str, str] = {}
    roles = {"a": "active", "b": "standby"}
    a_mode, b_mode = ModeController(Store(tmp_path / "a.db")), ModeController(Store(tmp_path / "b.db"))
    a = PairModeSync(a_mode, "10.0.0.1", "10.0.0.2", lambda: roles["a"])
    b = PairModeSync(b_mode, "10.0.0.2", "10.0.0.1", lambda: roles["b"])
    a.table = b.table = Table(shared)

    async def rounds() -> None:
        for _ in range(2):
            await a.step()
            await b.step()

    await a_mode.observe(Mode.SURVIVAL, "the cloud is gone (as A sees it)")
    await rounds()
    assert b_mode.mode is Mode.SURVIVAL and b.status()["mode_agreement"] == {"decides": "peer", "following": "survival"}
    assert a.status()["mode_agreement"]["decides"] == "this box" and a.status()["peer_health"]["role"] == "standby"
    await b_mode.set_override(Override.NORMAL, "typed on B")
    await rounds()
    assert a_mode.mode is Mode.NORMAL and a_mode.status().override is Override.NORMAL
    stamp = a_mode.status().override_at
    await rounds()  # taken with B's time: nothing echoes back and forth
    assert a_mode.status().override_at == stamp == b_mode.status().override_at
    assert BoxRecord.decode(shared[key("10.0.0.1")]) is not None


def test_status_lines_name_the_peers_health_the_lag_and_who_decides() -> None:
    base = {"role": "standby", "virtual_ip": "192.0.2.10/24", "peer": "192.0.2.1", "keepalived": {"running": True}}
    heard = {"up": True, "heard_s": 0.4, "lag_ms": 12, "replication": "active", "role": "active", "mode": "survival"}
    lines = status_lines(base | {"peer_health": heard, "mode_agreement": {"following": "survival"}})
    assert lines == [
        "pair:          standby, shared address 192.0.2.10/24, peer 192.0.2.1",
        "pair peer:     up: heard 0.4 s ago, replication lag 12 ms, DMQ link active; it is active in survival",
        "pair mode:     following the active box (survival)",
    ]
    silent = heard | {"up": False, "heard_s": 8.0, "replication": "pending"}
    lines = status_lines(base | {"peer_health": silent, "mode_agreement": {"following": None}})
    assert lines[1].startswith("pair peer:     SILENT: heard 8.0 s ago") and "it last said it was active" in lines[1]
    assert lines[2] == "pair mode:     decided by this box (its probes and override); the peer follows"
    never = {"up": False, "heard_s": None, "lag_ms": None, "replication": None, "role": None, "mode": None}
    assert "NOT HEARD" in status_lines(base | {"peer_health": never})[1]
