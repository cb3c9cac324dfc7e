"""CSV in Asterisk's Master.csv column order: to a directory (a sink) or to a stream (`lifeline cdr export`)."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.cdr.records import CdrRecord, Disposition
from gateway.cdr.sinks import Ack, AckStatus, SinkError

if TYPE_CHECKING:
    from gateway.store import Store

MASTER_CSV_COLUMNS = (
    "clid",
    "src",
    "dst",
    "dcontext",
    "channel",
    "dstchannel",
    "lastapp",
    "lastdata",
    "start",
    "answer",
    "end",
    "duration",
    "billsec",
    "disposition",
    "amaflags",
    "accountcode",
    "uniqueid",
    "userfield",
)

ASTERISK_DISPOSITIONS = {
    Disposition.ANSWERED: "ANSWERED",
    Disposition.NO_ANSWER: "NO ANSWER",
    Disposition.BUSY: "BUSY",
    Disposition.FAILED: "FAILED",
    Disposition.REFUSED: "FAILED",
}


def _stamp(ts: float | None) -> str:
    # Asterisk writes local time unless usegmtime=yes; Lifeline writes UTC so a fleet agrees.
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) if ts else ""


def master_csv_row(record: CdrRecord) -> list[str]:
    """One record as a Master.csv row (uniqueid = the record's id)."""
    return [
        f'"{record.from_ext or record.from_number}" <{record.from_number}>',
        record.from_number,
        record.to_number,
        f"lifeline-{record.mode}",
        f"SIP/{record.from_number}",
        f"SIP/{record.to_number}",
        "Dial",
        f"SIP/{record.to_number}",
        _stamp(record.start_ts),
        _stamp(record.answer_ts),
        _stamp(record.end_ts),
        str(round(record.duration_s)),
        str(record.billable_s),
        ASTERISK_DISPOSITIONS[record.disposition],
        "DOCUMENTATION",
        "",
        record.id,
        f"clock={record.clock_source.value};sip={record.sip_code or ''};direction={record.direction.value}",
    ]


def master_csv(records: Iterable[CdrRecord]) -> str:
    """Master.csv text: no header, every field quoted, as Asterisk's cdr_csv writes it."""
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for record in records:
        writer.writerow(master_csv_row(record))
    return out.getvalue()


def export_final(store: Store, since: float = 0.0) -> tuple[int, str]:
    """The final records that started after `since` as Master.csv text, oldest first: (how many, the text).

    `lifeline cdr export` and the status page's download.
    """
    with store.read() as conn:
        cursor = conn.execute("SELECT * FROM cdrs WHERE state = 'final' AND start_ts >= ? ORDER BY seq", [since])
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
    return len(rows), master_csv(CdrRecord.from_row(r) for r in rows)


def write_durably(path: Path, text: str) -> None:
    """Write a file so that it is either whole or absent after a power cut (temp file, fsync, rename, fsync dir)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class CsvDirectorySink:
    """Writes each batch as one Master.csv-format file named by its first record; a retry replaces that file.

    A batch is settled as a whole, so after a crash the next batch starts at the same record as the
    file left unsettled: naming the file by that record (not by the batch's key, which changes when
    more records have become pending meanwhile) makes the rewrite replace it instead of duplicating
    its records in a second file.
    """

    def __init__(self, directory: Path, name: str = "csv") -> None:
        self.name = name
        self.directory = directory

    def _write(self, batch: Sequence[CdrRecord]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"cdr-{batch[0].seq:012d}.csv"
        write_durably(path, master_csv(batch))

    async def push(self, batch: Sequence[CdrRecord], idempotency_key: str) -> list[Ack]:
        """Write the batch file durably; every record acked once it is on disk."""
        try:
            await asyncio.to_thread(self._write, batch)
        except OSError as err:
            raise SinkError(f"{self.name}: {self.directory}: {err}") from err
        return [Ack(r.id, AckStatus.ACCEPTED) for r in batch]

    async def close(self) -> None:
        """Nothing to release."""

    def describe(self) -> dict[str, Any]:
        """For the status."""
        return {"kind": "csv", "directory": str(self.directory)}
