"""The documented retention: events and delivered alerts age out with delivered records; nothing undelivered does."""

from __future__ import annotations

import time
from pathlib import Path

from gateway.cdr.service import purge
from gateway.store import Store

DAY = 86400.0


def test_old_events_and_delivered_alerts_go_undelivered_alerts_stay(tmp_path: Path) -> None:
    store = Store(tmp_path / "lifeline.db")
    now = time.time()
    try:
        store.add_event("sip", "203.0.113.7 banned")
        store.add_event("emergency", "EMERGENCY CALL to 112 from 1001")
        store.queue_alert("old-delivered", ["webhook"], {"type": "mode.changed"})
        store.queue_alert("old-pending", ["webhook"], {"type": "mode.changed"})
        store.queue_alert("new-delivered", ["webhook"], {"type": "mode.changed"})
        with store.write() as conn:
            conn.execute("UPDATE events SET ts = ? WHERE kind = 'sip'", [now - 40 * DAY])
            conn.execute("UPDATE alerts SET delivered_at = ? WHERE alert_id = 'old-delivered'", [now - 40 * DAY])
            conn.execute("UPDATE alerts SET created = ? WHERE alert_id = 'old-pending'", [now - 40 * DAY])
            conn.execute("UPDATE alerts SET delivered_at = ? WHERE alert_id = 'new-delivered'", [now - DAY])

        purge(store, 30, now=now)

        assert [e["kind"] for e in store.recent_events()] == ["emergency"]
        with store.read() as conn:
            left = sorted(r[0] for r in conn.execute("SELECT alert_id FROM alerts"))
        assert left == ["new-delivered", "old-pending"]
    finally:
        store.close()
