"""Capture: fold Kamailio's acc events into call records, exactly once, in one transaction per pass."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import structlog

from gateway.cdr.acc import trunk_caller, trunk_details
from gateway.cdr.clock import BestClock, Stamp
from gateway.cdr.pair import peer_starts, record_id
from gateway.cdr.records import ClockKind, Direction, Disposition, disposition_for
from gateway.config import TrunkConfig
from gateway.logs import mask_number
from gateway.sip.accounting import AccEvent, AccReader, acc_path, prepare_acc_file
from gateway.sip.call_starts import CallStart
from gateway.store import Store

log = structlog.get_logger("cdr.capture")

CURSOR_KEY = "cdr.acc_cursor"
BATCH = 500


def _rows(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


class Capture:
    """Reads new acc rows, updates `cdrs`, queues final records for every sink, deletes the rows: one commit."""

    def __init__(
        self,
        store: Store,
        clock: BestClock,
        sinks: Sequence[str],
        *,
        record_normal: bool = False,
        ring_timeout_s: float = 180.0,
        max_call_s: float = 4 * 3600.0,
        trunk_extension: str | None = None,
        emergency: Collection[str] | None = None,
        call_ends: Callable[[str], tuple[float, str] | None] | None = None,
        call_starts: Callable[[str], CallStart | None] | None = None,
    ) -> None:
        self.store = store
        # Pair mode: ends of calls the other box saw (gateway.sip.call_ends), starts of calls answered
        # through it (gateway.sip.call_starts); None for a single box.
        self.call_ends = call_ends
        self.call_starts = call_starts
        self.trunk_extension = trunk_extension
        # The dial plan's and Kamailio's list (TrunkConfig.emergency_list); the default country's if none is given.
        self.emergency = frozenset(emergency if emergency is not None else TrunkConfig().emergency_list)
        self.clock = clock
        self.sinks = list(sinks)
        self.record_normal = record_normal
        self.ring_timeout_s = ring_timeout_s
        self.max_call_s = max_call_s
        self.captured = 0  # records made final by this process
        self.skipped = 0
        self._acc: AccReader | None = None

    # --- Kamailio's event file ---------------------------------------------------------------

    @property
    def acc_path(self) -> Path:
        """The file Kamailio's acc module writes (kamailio.cfg.tmpl: `%%db_path.acc`)."""
        return acc_path(self.store.path)

    def prepare(self) -> None:
        """Before Kamailio starts: create its event file and drop the events already folded."""
        prepare_acc_file(self.acc_path, int(self.store.get_state(CURSOR_KEY, 0)))

    def _read_events(self, after: int) -> list[dict[str, Any]]:
        if self._acc is None:
            self._acc = AccReader(self.acc_path)
        return self._acc.after(after, BATCH)

    # --- one pass ---------------------------------------------------------------------------

    def step(self) -> int:
        """Fold the events written since the last pass; returns how many records became final."""
        cursor = int(self.store.get_state(CURSOR_KEY, 0))
        # Read outside the store's transaction: Kamailio never waits for a reader (WAL).
        events = self._read_events(cursor)
        if not events:
            return 0
        peer = peer_starts(self.store, events, self.call_starts) if self.call_starts is not None else {}
        finals = 0
        with self.store.write() as conn:
            stored = conn.execute("SELECT value FROM state WHERE key = ?", [CURSOR_KEY]).fetchone()
            if int(json.loads(stored[0]) if stored else 0) != cursor:
                return 0  # another process folded meanwhile; the next pass starts from its cursor
            extensions = {r[0] for r in conn.execute("SELECT number FROM extensions")}
            for row in events:
                try:
                    event = AccEvent.from_row(row)
                except ValueError as err:
                    log.warning("acc row skipped", error=str(err))
                    self.skipped += 1
                    continue
                # A BYE of a call answered through the other box: its start first, as that box folds it.
                for earlier in peer.pop(event.call_id, []) if event.method == "BYE" else []:
                    self._fold(conn, earlier, extensions)
                finals += self._fold(conn, event, extensions)
            conn.execute(
                "INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [CURSOR_KEY, json.dumps(events[-1]["id"])],
            )
        self.clock.flush()
        self.captured += finals
        return finals

    def _stamp(self, wall: float) -> Stamp:
        return self.clock.from_wall(wall)

    def _find(self, conn: sqlite3.Connection, event: AccEvent) -> dict[str, Any] | None:
        rows = _rows(
            conn.execute("SELECT * FROM cdrs WHERE call_id = ? AND from_tag = ?", [event.call_id, event.from_tag])
        )
        return rows[0] if rows else None

    def _create(
        self, conn: sqlite3.Connection, event: AccEvent, extensions: set[str], trunk: dict[str, str] | None
    ) -> dict[str, Any]:
        wall = event.start_time if event.start_time is not None else event.time
        start = self._stamp(wall)
        src, dst = event.src_user, event.dst_user
        from_ext = src if src in extensions else None
        if self.trunk_extension and src == self.trunk_extension:
            # In from the trunk, the agent calling as its extension: the caller in PAI / display name.
            src, from_ext = trunk_caller(event), None
        elif event.sip_code < 200 and trunk is not None:
            # The agent's INVITE in the outside caller's name (Kamailio takes the header only from it).
            from_ext = None
        if dst in self.emergency:
            direction = Direction.EMERGENCY
        elif from_ext is not None and dst in extensions:
            direction = Direction.INTERNAL
        elif from_ext is not None:
            direction = Direction.OUTBOUND
        else:
            direction = Direction.INBOUND
        row = {
            "id": record_id(event.call_id, event.from_tag, wall),  # the same on the pair's other box
            "call_id": event.call_id,
            "from_tag": event.from_tag,
            "state": "open",
            "start_ts": start.ts,
            "start_mono": start.mono,
            "boot_id": start.boot_id,
            "clock_source": start.kind.value,
            "from_number": src,
            "to_number": dst,
            "from_ext": from_ext,
            "to_ext": dst if dst in extensions else None,
            "direction": direction.value,
            "mode": event.mode,
            "trunk": None,
            "trunk_call": None,
        }
        cursor = conn.execute(
            f"INSERT INTO cdrs ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})", list(row.values())
        )
        row["seq"] = cursor.lastrowid
        row["answer_ts"] = None
        return row

    def _note_trunk(self, conn: sqlite3.Connection, cdr: dict[str, Any], details: dict[str, str] | None) -> None:
        """Add the trunk agent's details from this event to the record (they arrive with the INVITE or the answer)."""
        if details is None:
            return
        merged = {**(json.loads(cdr["trunk"]) if cdr.get("trunk") else {}), **details}
        direction = Direction.EMERGENCY.value if merged.get("emergency") == "1" else cdr["direction"]
        trunk_call = merged.get("call") or cdr.get("trunk_call")
        conn.execute(
            "UPDATE cdrs SET trunk = ?, trunk_call = ?, direction = ? WHERE seq = ?",
            [json.dumps(merged), trunk_call, direction, cdr["seq"]],
        )
        cdr.update(trunk=json.dumps(merged), trunk_call=trunk_call, direction=direction)

    def _merged_into_sibling(self, conn: sqlite3.Connection, cdr: dict[str, Any], disposition: Disposition) -> bool:
        """Whether this unanswered leg of an inbound trunk call folds into another leg's record.

        The agent rings each ring-group member with an INVITE of its own; all legs carry the same
        trunk call id. One call is one record: a leg that ends unanswered while a sibling is still
        ringing or talking, or already answered, is kept as 'merged' and never delivered; the last
        leg of a call nobody answered is the record.
        """
        if not cdr.get("trunk_call") or disposition is Disposition.ANSWERED:
            return False
        sibling = conn.execute(
            "SELECT 1 FROM cdrs WHERE trunk_call = ? AND seq != ? AND (state = 'open'"
            " OR (state = 'final' AND answer_ts IS NOT NULL)) LIMIT 1",
            [cdr["trunk_call"], cdr["seq"]],
        ).fetchone()
        return sibling is not None

    def _finish(
        self,
        conn: sqlite3.Connection,
        cdr: dict[str, Any],
        end: Stamp | None,
        disposition: Disposition,
        sip_code: int | None,
        cause: str,
    ) -> int:
        kind = ClockKind(cdr["clock_source"])
        if end is not None and end.kind.rank > kind.rank:
            kind = end.kind  # a record is as good as its worst stamp
        if self._merged_into_sibling(conn, cdr, disposition):
            conn.execute(
                "UPDATE cdrs SET state = 'merged', end_ts = ?, disposition = ?, sip_code = ?, hangup_cause = ?,"
                " final_at = ? WHERE seq = ?",
                [end.ts if end else None, disposition.value, sip_code, cause, time.time(), cdr["seq"]],
            )
            return 0
        conn.execute(
            "UPDATE cdrs SET state = 'final', end_ts = ?, end_mono = ?, disposition = ?, sip_code = ?,"
            " hangup_cause = ?, clock_source = ?, final_at = ? WHERE seq = ?",
            [
                end.ts if end else None,
                end.mono if end else None,
                disposition.value,
                sip_code,
                cause,
                kind.value,
                time.time(),
                cdr["seq"],
            ],
        )
        conn.executemany(
            "INSERT OR IGNORE INTO cdr_outbox (sink, cdr_seq, state, updated_at) VALUES (?, ?, 'pending', ?)",
            [(sink, cdr["seq"], time.time()) for sink in self.sinks],
        )
        log.info(
            "call recorded",
            id=cdr["id"],
            caller=mask_number(cdr["from_number"]),
            callee=mask_number(cdr["to_number"]),
            disposition=disposition.value,
            sip_code=sip_code,
            mode=cdr["mode"],
        )
        return 1

    def _fold(self, conn: sqlite3.Connection, event: AccEvent, extensions: set[str]) -> int:
        if event.mode == "normal" and not self.record_normal:
            return 0
        if event.method == "INVITE":
            trunk = trunk_details(event)
            cdr = self._find(conn, event)
            if cdr is not None and cdr["state"] in ("final", "merged"):
                return 0  # a late duplicate event (forking, retransmission): the call is done
            if event.sip_code < 200:
                if cdr is None:
                    cdr = self._create(conn, event, extensions, trunk)
                else:
                    conn.execute("UPDATE cdrs SET mode = ? WHERE seq = ?", [event.mode, cdr["seq"]])
                self._note_trunk(conn, cdr, trunk)
                return 0
            if cdr is None:
                cdr = self._create(conn, event, extensions, trunk)
            self._note_trunk(conn, cdr, trunk)
            stamp = self._stamp(event.time)
            if event.sip_code < 300:
                if cdr["answer_ts"] is None:
                    conn.execute(
                        "UPDATE cdrs SET answer_ts = ?, answer_mono = ?, sip_code = ?, mode = ? WHERE seq = ?",
                        [stamp.ts, stamp.mono, event.sip_code, event.mode, cdr["seq"]],
                    )
                return 0
            if cdr["answer_ts"] is not None:
                return 0
            cause = f"{event.sip_code} {event.sip_reason}".strip()
            return self._finish(conn, cdr, stamp, disposition_for(event.sip_code), event.sip_code, cause)
        if event.method == "BYE":
            rows = _rows(
                conn.execute(
                    "SELECT * FROM cdrs WHERE call_id = ? AND state = 'open' ORDER BY seq LIMIT 1", [event.call_id]
                )
            )
            if not rows:
                return 0
            cdr = rows[0]
            who = "caller" if event.from_tag == cdr["from_tag"] else "callee"
            cause = f"{who} hung up"
            if cdr["answer_ts"] is None:
                # Only a confirmed dialog has a BYE: the 200 passed while Kamailio restarted
                # (answered statelessly), so the call was answered at a time nobody saw.
                cause += "; answer not seen"
            return self._finish(conn, cdr, self._stamp(event.time), Disposition.ANSWERED, cdr["sip_code"] or 200, cause)
        return 0

    # --- housekeeping -----------------------------------------------------------------------

    def _ended_elsewhere(self) -> int:
        """Close answered records whose BYE went through the pair's other box (after a failover)."""
        assert self.call_ends is not None
        with self.store.read() as conn:
            talking = _rows(conn.execute("SELECT * FROM cdrs WHERE state = 'open' AND answer_ts IS NOT NULL"))
        ended = [(cdr, end) for cdr in talking if (end := self.call_ends(cdr["call_id"])) is not None]
        if not ended:
            return 0
        with self.store.write() as conn:
            for cdr, (when, tag) in ended:
                who = "caller" if tag == cdr["from_tag"] else "callee"
                cause = f"{who} hung up (through the pair's other box)"
                self._finish(conn, cdr, self._stamp(when), Disposition.ANSWERED, cdr["sip_code"] or 200, cause)
        self.clock.flush()
        return len(ended)

    def sweep(self) -> int:
        """Close records whose end will never come (a crash lost the transaction); returns how many."""
        closed = self._ended_elsewhere() if self.call_ends is not None else 0
        now = self.clock.now().ts
        with self.store.read() as conn:
            stale = _rows(
                conn.execute(
                    "SELECT * FROM cdrs WHERE state = 'open' AND ((answer_ts IS NULL AND start_ts < ?)"
                    " OR (answer_ts IS NOT NULL AND answer_ts < ?))",
                    [now - self.ring_timeout_s, now - self.max_call_s],
                )
            )
        self.clock.flush()
        if not stale:
            return closed
        with self.store.write() as conn:
            for cdr in stale:
                if cdr["answer_ts"] is None:
                    self._finish(conn, cdr, None, Disposition.FAILED, None, "no final answer (interrupted)")
                else:
                    self._finish(conn, cdr, None, Disposition.ANSWERED, cdr["sip_code"] or 200, "end not seen")
        return closed + len(stale)

    def correct_clock(self) -> int:
        """Re-time undelivered records stamped by a worse clock once a better one is back; returns how many."""
        with self.store.read() as conn:
            candidates = _rows(
                conn.execute(
                    "SELECT * FROM cdrs WHERE clock_source IN ('monotonic', 'unsynced') AND NOT EXISTS"
                    " (SELECT 1 FROM cdr_outbox o WHERE o.cdr_seq = cdrs.seq AND o.state = 'delivered') LIMIT 1000"
                )
            )
        updates = []
        self.clock.flush()
        for cdr in candidates:
            kind = ClockKind(cdr["clock_source"])
            fixed: dict[str, float | None] = {}
            new_kind = None
            for column in ("start", "answer", "end"):
                better = self.clock.correct(cdr[f"{column}_mono"], cdr["boot_id"], kind)
                if better is None:
                    fixed[column] = cdr[f"{column}_ts"]
                else:
                    fixed[column], new_kind = better
            if new_kind is not None:
                updates.append([fixed["start"], fixed["answer"], fixed["end"], new_kind.value, cdr["seq"]])
        if updates:
            with self.store.write() as conn:
                conn.executemany(
                    "UPDATE cdrs SET start_ts = ?, answer_ts = ?, end_ts = ?, clock_source = ? WHERE seq = ?", updates
                )
            log.info("call records re-timed", count=len(updates), source=updates[0][3])
        return len(updates)

    def backfill(self) -> int:
        """Queue final records for sinks added since they were captured."""
        with self.store.write() as conn:
            total = 0
            for sink in self.sinks:
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO cdr_outbox (sink, cdr_seq, state, updated_at)"
                    " SELECT ?, seq, 'pending', ? FROM cdrs WHERE state = 'final'",
                    [sink, time.time()],
                )
                total += cursor.rowcount
        return total
