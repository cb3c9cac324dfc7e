"""`lifeline cdr list|export|purge`: call records for audits, straight from the store."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gateway.cdr import repository as records
from gateway.cdr.csvfile import master_csv, write_durably
from gateway.cdr.records import CdrRecord, iso
from gateway.cdr.service import purge
from gateway.cli.progress import Meter, terminal
from gateway.config import Config
from gateway.logs import mask_number
from gateway.store import Store


def add_parser(sub: Any) -> None:
    """Register `lifeline cdr …` on the CLI's subparsers."""
    cdr = sub.add_parser("cdr", help="call records Lifeline carried (audits, export, purge)")
    cdr_sub = cdr.add_subparsers(dest="cdr_command", required=True)
    lst = cdr_sub.add_parser("list", help="list call records, newest last")
    lst.add_argument("--json", action="store_true", help="machine-readable, full numbers")
    lst.add_argument("--limit", type=_count, default=100, help="the newest N records (default 100; 0: all)")
    lst.add_argument("--show-numbers", action="store_true", help="print numbers unmasked")
    exp = cdr_sub.add_parser("export", help="final records as CSV in Asterisk Master.csv column order")
    exp.add_argument("--out", type=Path, help="file to write (default: standard output)")
    exp.add_argument("--since", type=float, default=0.0, help="only records that started after this UNIX time")
    prg = cdr_sub.add_parser("purge", help="delete delivered records older than the retention now")
    prg.add_argument("--older-than-days", type=float, help="instead of cdr.retention_days")


def _count(text: str) -> int:
    """A --limit: a whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of records, 0 or more (0: all), not {text!r}")
    return value


def export(store: Store, since: float, meter: Meter) -> tuple[int, str]:
    """The final records since `since` as Master.csv text, oldest first, counted on the meter as they are read."""
    parts: list[str] = []
    done = 0
    with store.read() as conn:
        total = records.count_final_since(conn, since)
        meter(0, total)
        for rows in records.final_since(conn, since):
            parts.append(master_csv(CdrRecord.from_row(r) for r in rows))
            done += len(rows)
            meter(done, total)
    return done, "".join(parts)


def run(args: argparse.Namespace, config: Config) -> int:
    """Run one `lifeline cdr` command."""
    store = Store(config.db_path)
    try:
        if args.cdr_command == "purge":
            days = args.older_than_days if args.older_than_days is not None else config.cdr.retention_days
            print(f"purged {purge(store, days)} delivered record(s) older than {days:g} day(s)")
            return 0
        if args.cdr_command == "export":
            meter = Meter(terminal(), "exporting call records")
            try:
                count, text = export(store, args.since, meter)
                if args.out is not None:
                    meter.describe("writing the file")
                    write_durably(args.out, text)
            finally:
                meter.close()  # before anything else is printed
            if args.out is None:
                sys.stdout.write(text)
            else:
                print(f"exported {count} record(s) to {args.out}", file=sys.stderr)
            return 0
        with store.read() as conn:
            rows = records.newest(conn, args.limit or None)
            more = records.count(conn) - len(rows)
            delivery = records.deliveries(conn)
        hint = f"{more} more (older) record(s) not shown: --limit {len(rows) + more} (or 0) shows them all"
        if args.json:
            print(json.dumps([{**r, "delivery": delivery.get(r["seq"], {})} for r in rows], indent=2))
            if more:
                print(f"lifeline: {hint}", file=sys.stderr)  # stdout stays one JSON document
            return 0
        for r in rows:
            show = (lambda n: n) if args.show_numbers else mask_number
            sinks = ",".join(f"{k}:{v}" for k, v in delivery.get(r["seq"], {}).items()) or "-"
            print(
                f"{iso(r['start_ts'])}  {show(r['from_number']):>10} → {show(r['to_number']):<10} "
                f"{r['disposition'] or r['state']:<10} {r['sip_code'] or '':<4} {r['mode']:<9} "
                f"clock={r['clock_source']:<9} {sinks}"
            )
        print(f"{len(rows)} record(s)")
        if more:
            print(hint)
        return 0
    finally:
        store.close()
