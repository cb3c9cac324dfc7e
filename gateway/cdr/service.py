"""The CDR service: capture loop, delivery after recovery and periodically in NORMAL, retention purge."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import structlog

from gateway.cdr import repository
from gateway.cdr.capture import Capture
from gateway.cdr.clock import BestClock, ClockSource, Host, SystemHost, SystemNtpClock
from gateway.cdr.csvfile import CsvDirectorySink
from gateway.cdr.fusionpbx import FusionPbxSink
from gateway.cdr.outbox import OutboxDb, SinkDelivery
from gateway.cdr.sinks import CdrSink
from gateway.cdr.webhook import WebhookSink
from gateway.config import CdrConfig
from gateway.sip.call_ends import PairCalls
from gateway.store import Store

log = structlog.get_logger("cdr")

CAPTURE_EVERY_S = 0.5
SWEEP_EVERY_S = 30.0
PURGE_EVERY_S = 3600.0


def build_sinks(config: CdrConfig) -> list[CdrSink]:
    """The sinks the config names, in a fixed order."""
    gateway_id = config.gateway_id or socket.gethostname()
    sinks: list[CdrSink] = []
    if config.webhook is not None:
        sinks.append(
            WebhookSink(
                config.webhook.url,
                config.webhook.secret.get_secret_value(),
                gateway_id=gateway_id,
                timeout_s=config.webhook.timeout_s,
            )
        )
    if config.fusionpbx is not None:
        fp = config.fusionpbx
        sinks.append(
            FusionPbxSink(fp.url, fp.username, fp.password.get_secret_value(), domain=fp.domain, timeout_s=fp.timeout_s)
        )
    if config.csv is not None:
        sinks.append(CsvDirectorySink(Path(config.csv.directory)))
    return sinks


def write_kamailio_settings(store: Store, config: CdrConfig) -> None:
    """What Kamailio reads at start (htable `cdrcfg`): whether NORMAL calls are recorded too."""
    with store.write() as conn:
        repository.set_record_normal(conn, config.record_normal)


def purge(store: Store, retention_days: float, now: float | None = None) -> int:
    """Delete records delivered to every sink longer than the retention ago; returns how many.

    Undelivered records are never purged: pending or quarantined at any sink, or never queued at
    all (captured while no sink was configured: a sink added later still gets them). Events and
    delivered alerts older than the retention go too; alerts not yet delivered stay.
    """
    cutoff = (now if now is not None else time.time()) - retention_days * 86400
    with store.write() as conn:
        cursor = conn.execute(
            "DELETE FROM cdrs WHERE state = 'final' AND seq IN"
            " (SELECT cdr_seq FROM cdr_outbox GROUP BY cdr_seq"
            "  HAVING SUM(state != 'delivered') = 0 AND MAX(updated_at) < ?)",
            [cutoff],
        )
        # Unanswered ring-group legs folded into their call's record (capture.py) go with the age.
        conn.execute("DELETE FROM cdrs WHERE state = 'merged' AND final_at < ?", [cutoff])
        conn.execute("DELETE FROM cdr_outbox WHERE NOT EXISTS (SELECT 1 FROM cdrs WHERE cdrs.seq = cdr_outbox.cdr_seq)")
        # The status page's events (addresses, emergency calls) and alerts already delivered age out alike.
        conn.execute("DELETE FROM events WHERE ts < ?", [cutoff])
        conn.execute("DELETE FROM alerts WHERE delivered_at IS NOT NULL AND delivered_at < ?", [cutoff])
        return int(cursor.rowcount)


class CdrService:
    """Runs capture, delivery and purge as tasks of the daemon."""

    def __init__(
        self,
        store: Store,
        config: CdrConfig,
        *,
        deliver_now: Callable[[], bool],
        sinks: Sequence[CdrSink] | None = None,
        clock: BestClock | None = None,
        host: Host | None = None,
        sources: Sequence[ClockSource] | None = None,
        trunk_extension: str | None = None,
        emergency: Collection[str] | None = None,
        pair: PairCalls | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self._deliver_now = deliver_now
        host = host or SystemHost()
        self.clock = clock or BestClock(host, sources if sources is not None else [SystemNtpClock(host)], store)
        self.sinks = list(sinks) if sinks is not None else build_sinks(config)
        self.capture = Capture(
            store,
            self.clock,
            [s.name for s in self.sinks],
            record_normal=config.record_normal,
            ring_timeout_s=config.ring_timeout_s,
            max_call_s=config.max_call_s,
            trunk_extension=trunk_extension,
            emergency=emergency,
            call_ends=pair.end if pair is not None else None,
            call_starts=pair.start if pair is not None else None,
        )
        outbox = OutboxDb(store)
        self.outbox = outbox
        self.deliveries = [
            SinkDelivery(
                sink,
                outbox,
                batch_size=config.batch_size,
                backoff_base_s=config.backoff_base_s,
                backoff_max_s=config.backoff_max_s,
            )
            for sink in self.sinks
        ]
        self._kick = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.last_purge: float | None = None

    def prepare(self) -> None:
        """Before Kamailio starts: its settings, and outbox rows for sinks added since."""
        write_kamailio_settings(self.store, self.config)
        self.capture.prepare()
        queued = self.capture.backfill()
        if queued:
            log.info("records queued for new sinks", count=queued)

    async def start(self) -> None:
        """Start the loops."""
        self._tasks = [
            asyncio.create_task(self._capture_loop(), name="cdr-capture"),
            asyncio.create_task(self._delivery_loop(), name="cdr-delivery"),
            asyncio.create_task(self._purge_loop(), name="cdr-purge"),
        ]

    def kick(self) -> None:
        """Deliver now (called when the mode moves back to NORMAL)."""
        self._kick.set()

    async def stop(self) -> None:
        """Cancel the loops, close the sinks."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sink in self.sinks:
            with contextlib.suppress(Exception):
                await sink.close()

    async def _capture_loop(self) -> None:
        last_sweep = 0.0
        while True:
            try:
                finals = await asyncio.to_thread(self.capture.step)
                now = time.monotonic()
                if now - last_sweep >= min(SWEEP_EVERY_S, self.config.ring_timeout_s / 2):
                    last_sweep = now
                    finals += await asyncio.to_thread(self.capture.sweep)
                    await asyncio.to_thread(self.capture.correct_clock)
                if finals:
                    self._kick.set()
            except Exception as err:  # the loop must outlive one bad pass; the rows stay for the next
                log.exception("capture pass failed", error=str(err))
            await asyncio.sleep(CAPTURE_EVERY_S)

    async def _delivery_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.interval_s):
                    await self._kick.wait()
            self._kick.clear()
            if not self._deliver_now() or not self.deliveries:
                continue
            # Timestamps are corrected before records leave, if a better clock is back.
            await asyncio.to_thread(self.capture.correct_clock)
            results = await asyncio.gather(
                *(d.drain(self._deliver_now) for d in self.deliveries), return_exceptions=True
            )
            for delivery, result in zip(self.deliveries, results, strict=True):
                if isinstance(result, Exception):
                    log.error("delivery pass failed", sink=delivery.sink.name, error=repr(result))

    async def _purge_loop(self) -> None:
        while True:
            try:
                removed = await asyncio.to_thread(purge, self.store, self.config.retention_days)
                self.last_purge = time.time()
                if removed:
                    log.info("call records purged", count=removed, retention_days=self.config.retention_days)
            except Exception as err:
                log.exception("purge failed", error=str(err))
            await asyncio.sleep(PURGE_EVERY_S)

    def counts(self) -> dict[str, int]:
        """Records by state."""
        with self.store.read() as conn:
            rows = conn.execute("SELECT state, COUNT(*) FROM cdrs GROUP BY state").fetchall()
        counts = {"open": 0, "final": 0}
        counts.update({str(s): int(n) for s, n in rows})
        return counts

    async def status(self) -> dict[str, Any]:
        """What `lifeline status` shows about call records."""
        counts = await asyncio.to_thread(self.counts)
        sinks = []
        for delivery in self.deliveries:
            outbox = await asyncio.to_thread(self.outbox.counts, delivery.sink.name)
            sinks.append({"name": delivery.sink.name, **outbox, **delivery.status()})
        return {
            "records": counts,
            "captured": self.capture.captured,
            "clock": self.clock.status(),
            "sinks": sinks,
            "retention_days": self.config.retention_days,
            "last_purge": self.last_purge,
        }
