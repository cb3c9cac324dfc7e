"""What the status page shows, shaped from the status document (`lifeline status`): pure functions.

`page_model` gives the template and /ui/status.json the same thing: `fields` (short texts the page's
script puts into the elements of the same name), the mode, the chart's SVG paths and the timeline.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

from gateway.core.health import WHERE
from gateway.doctor.trunk import NO_VOLTE
from gateway.ha.pair_mode import agreement_words, peer_words
from gateway.web.ui.history import Sample, sip_probe

# The chart's drawing area in its viewBox (0 0 CHART_W CHART_H).
CHART_W, CHART_H = 600, 160
PLOT_X0, PLOT_X1, PLOT_Y0, PLOT_Y1 = 44.0, 556.0, 10.0, 136.0
BUCKETS = 120  # 30 s each over the hour: the worst of each is drawn
RTT_SCALES = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
TIMELINE_S = 24 * 3600.0
DAY_S = 86400.0


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def ago(seconds: float | None) -> str:
    """'12 s', '3 min', '2 h', '1 d'."""
    if seconds is None:
        return "—"
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def clock(ts: float | None, now: float) -> str:
    """The box's local time of ts: 'HH:MM:SS' today, with the date when older than a day."""
    if ts is None:
        return "—"
    when = dt.datetime.fromtimestamp(ts)
    return when.strftime("%H:%M:%S" if now - ts < DAY_S else "%Y-%m-%d %H:%M")


def _ms(value: Any) -> str:
    return "—" if not isinstance(value, int | float) else f"{value:g} ms"


def _percent(value: Any) -> str:
    return "—" if not isinstance(value, int | float) else f"{value * 100:.0f} %"


def chart(samples: Sequence[Sample], now: float, span_s: float = 3600.0) -> dict[str, Any]:
    """The SIP probe's last hour as SVG path data: RTT (worst per 30 s), loss (0–100 %), and unanswered probes."""
    start = now - span_s
    width, height = PLOT_X1 - PLOT_X0, PLOT_Y1 - PLOT_Y0
    buckets: list[list[Sample]] = [[] for _ in range(BUCKETS)]
    for sample in samples:
        if start <= sample.at <= now:
            buckets[min(BUCKETS - 1, int((sample.at - start) / span_s * BUCKETS))].append(sample)
    worst = [max((s.rtt_ms for s in b if s.rtt_ms is not None), default=None) for b in buckets]
    peak = max((w for w in worst if w is not None), default=0.0)
    scale = next((s for s in RTT_SCALES if peak <= s), RTT_SCALES[-1])

    def x(i: int) -> float:
        return PLOT_X0 + (i + 0.5) / BUCKETS * width

    def y(fraction: float) -> float:
        return PLOT_Y1 - min(1.0, max(0.0, fraction)) * height

    rtt: list[list[str]] = [[]]  # runs of points: a gap (no answer, or no sample) breaks the line
    loss: list[str] = []
    miss: list[str] = []
    for i, bucket in enumerate(buckets):
        top = worst[i]
        if top is not None:
            rtt[-1].append(f"{x(i):.1f} {y(top / scale):.1f}")
        elif rtt[-1]:
            rtt.append([])
        losses = [s.loss for s in bucket if s.loss is not None]
        if losses:
            loss.append(f"{x(i):.1f} {y(max(losses)):.1f}")
        if any(not s.ok for s in bucket):
            miss.append(f"M{x(i):.1f} {PLOT_Y1:.1f}V{PLOT_Y1 - 8:.1f}")
    return {
        "rtt": _path(rtt),
        "loss": _path([loss]),
        "miss": " ".join(miss),
        "scale": f"{scale} ms",
        "samples": len(samples),
    }


def _path(runs: list[list[str]]) -> str:
    """SVG path data of runs of points; a run of one point is drawn as a dot (round caps)."""
    parts = ["M" + " L".join(run) + (" h0.1" if len(run) == 1 else "") for run in runs if run]
    return " ".join(parts)


def timeline(events: Sequence[dict[str, Any]], mode: str, now: float, span_s: float = TIMELINE_S) -> dict[str, Any]:
    """The mode over the last span as segments (x and width in 0..1000), from the store's mode events (oldest first)."""
    start = now - span_s
    changes = [e for e in events if e.get("kind") == "mode" and start <= float(e["ts"]) <= now]
    current = str(_dict(changes[0].get("data")).get("old") or mode) if changes else mode
    segments, since = [], start
    for event in changes:
        data = _dict(event.get("data"))
        segments.append((since, float(event["ts"]), current))
        current, since = str(data.get("new") or current), float(event["ts"])
    segments.append((since, now, current))
    drawn = []
    for a, b, m in segments:
        width = max(2.0, (b - a) / span_s * 1000)  # a change of seconds still shows
        left = min((a - start) / span_s * 1000, 1000 - width)
        drawn.append({"x": round(left, 1), "w": round(width, 1), "mode": m})
    listed = [
        {"time": clock(float(e["ts"]), now), "kind": str(e.get("kind")), "message": str(e.get("message"))}
        for e in reversed(events)
        if start <= float(e["ts"]) <= now
    ][:12]
    return {"segments": drawn, "changes": listed}


def _modems(trunk: dict[str, Any]) -> list[dict[str, Any]]:
    modems = []
    for modem in _list(trunk.get("modems")):
        modem = _dict(modem)
        signal = _dict(modem.get("signal"))
        problem = str(modem.get("problem") or "")
        access = str(modem.get("access") or "")
        state = str(modem.get("state") or "unknown")
        if NO_VOLTE in problem:
            voice = "LTE without VoLTE: no calls"
        elif state == "ready":
            voice = "VoLTE" if access == "LTE" else (access or "ready")
        else:
            voice = "—"
        iccid = str(modem.get("iccid") or "")
        sim = f"SIM …{iccid[-4:]}" if iccid else "no SIM read"
        if state == "sim":
            sim = f"SIM problem: {problem or 'locked, missing or busy'}"
        bars = signal.get("bars")
        modems.append(
            {
                "name": str(modem.get("name") or "modem"),
                "state": state,
                "network": str(modem.get("operator") or "—") + (f" ({access})" if access else ""),
                "bars": int(bars) if isinstance(bars, int | float) else 0,
                "dbm": _ms(signal.get("dbm")).replace(" ms", " dBm"),
                "sim": sim,
                "voice": voice,
                "problem": problem,
                "model": str(modem.get("model") or ""),
            }
        )
    return modems


def _sinks(cdr: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {
            "name": str(sink.get("name")),
            "state": str(sink.get("state")),
            "pending": str(sink.get("pending", 0)),
            "delivered": str(sink.get("delivered", 0)),
            "quarantined": str(sink.get("quarantined", 0)),
            "error": str(sink.get("last_error") or ""),
        }
        for sink in map(_dict, _list(cdr.get("sinks")))
    ]


def _phones(registrations: dict[str, Any], now: float) -> list[dict[str, str]]:
    """The phone table's rows: short texts only (the page's script puts them in as text)."""
    rows = []
    for phone in map(_dict, _list(registrations.get("phones"))):
        left = phone.get("expires_s")
        rows.append(
            {
                "extension": str(phone.get("extension") or ""),
                "name": str(phone.get("name") or ""),
                "source": str(phone.get("source") or ""),
                "transport": str(phone.get("transport") or "").upper(),
                "user_agent": str(phone.get("user_agent") or "—"),
                "expires": "permanent" if left is None else f"in {ago(left)} ({clock(now + float(left), now)})",
                "taken": f"{str(phone.get('mode') or '?').upper()} ({phone.get('taken')})",
            }
        )
    return rows


def _drill(drill: dict[str, Any], now: float) -> dict[str, Any]:
    if drill.get("running"):
        return {"text": f"running ({drill.get('state')})", "report": None, "passed": None}
    last = _dict(drill.get("last"))
    if not last:
        return {"text": "none yet", "report": None, "passed": None}
    verdict = "PASS" if last.get("passed") else "FAIL: " + ", ".join(map(str, _list(last.get("failed"))))
    started = last.get("started")
    when = clock(float(started), now) if isinstance(started, int | float) else "—"
    report = f"{last['id']}.html" if last.get("id") and _dict(last.get("reports")).get("html") else None
    return {"text": f"{when} {verdict}", "report": report, "passed": bool(last.get("passed"))}


def page_model(
    status: dict[str, Any], samples: Sequence[Sample], mode_events: Sequence[dict[str, Any]], now: float
) -> dict[str, Any]:
    """Everything the page shows, from the status document, the probe history and the mode events."""
    mode = _dict(status.get("mode"))
    current = str(mode.get("mode") or "normal")
    override = str(mode.get("override") or "auto")
    health = _dict(status.get("health"))
    probe = _dict(sip_probe(health))
    registrations = _dict(status.get("registrations"))
    mirror = _dict(status.get("mirror"))
    cdr = _dict(status.get("cdr"))
    records = _dict(cdr.get("records"))
    trunk = _dict(status.get("trunk"))
    sip = _dict(status.get("sip"))
    edge = _dict(sip.get("edge"))
    bans = [_dict(b) for b in _list(edge.get("bans"))]
    sinks = _sinks(cdr)
    drill = _drill(_dict(status.get("drill")), now)
    since = mode.get("since")
    trunk_calls = _list(trunk.get("calls"))
    backlog = sum(int(s["pending"]) for s in sinks if s["pending"].isdigit())
    failed = _dict(edge.get("failed_logins"))
    pair = _dict(status.get("ha"))
    paired = pair.get("role") not in (None, "off")
    fields = {
        "mode": current.upper(),
        "override": "automatic" if override == "auto" else f"manual override: {override}",
        "detected": str(mode.get("detected") or current),
        "since": f"{ago(now - since)} ago ({clock(since, now)})" if isinstance(since, int | float) else "—",
        "reason": str(mode.get("reason") or ""),
        "pair_role": f"{pair.get('role')}, shared address {pair.get('virtual_ip')}" if paired else "—",
        "pair_peer": peer_words(_dict(pair.get("peer_health"))) if paired else "—",
        "pair_mode": agreement_words(_dict(pair.get("mode_agreement"))) if paired else "—",
        "where": WHERE.get(str(health.get("where")), str(health.get("where") or "no probes (no cloud configured)")),
        "sip_probe": "—" if probe.get("ok") is None else ("answering" if probe["ok"] else "NOT answering"),
        "sip_rtt": _ms(probe.get("rtt_ms")),
        "sip_loss": _percent(probe.get("loss")),
        "phones": str(registrations.get("users", "—")),
        "contacts": str(registrations.get("contacts", "—")),
        "extensions": str(status.get("extensions", "—")),
        "mirror_source": str(mirror.get("source") or "none configured"),
        "mirror_age": f"{ago(mirror['age_s'])} ago" if isinstance(mirror.get("age_s"), int | float) else "never",
        "mirror_health": str(mirror.get("health") or "—") + (" (syncing)" if mirror.get("syncing") else ""),
        "mirror_error": str(mirror.get("last_error") or ""),
        "calls": str(records.get("open", "—")),  # records still open: calls in progress
        "trunk_calls": str(len(trunk_calls)),
        "bans": str(len(bans)) if edge else "—",
        "failed_logins": ", ".join(f"{who}: {n}" for who, n in sorted(failed.items())) or "none",
        "cdr_final": str(records.get("final", "—")),
        "cdr_backlog": str(backlog) if sinks else "no sinks configured",
        "cdr_clock": str(_dict(cdr.get("clock")).get("source") or "—"),
        "drill": drill["text"],
        "kamailio": str(_dict(sip.get("kamailio")).get("state") or "—"),
        "uptime": ago(status.get("uptime_s")),
        "version": str(status.get("version") or ""),
        "updated": clock(now, now),
    }
    events = [
        {"time": clock(float(e["ts"]), now), "kind": str(e.get("kind")), "message": str(e.get("message"))}
        for e in map(_dict, _list(status.get("events")))
        if isinstance(e.get("ts"), int | float)
    ]
    return {
        "mode": current,
        "override": override,
        "serves_locally": current in ("survival", "recovering"),
        "pair": paired,
        "fields": fields,
        "chart": chart(samples, now),
        "timeline": timeline(mode_events, current, now),
        "events": events,
        "bans": [
            {"address": str(b.get("address")), "until": clock(_until(b), now), "bans": str(b.get("bans", 1))}
            for b in bans
        ],
        "phones": _phones(registrations, now),
        "phones_known": isinstance(registrations.get("phones"), list),
        "modems": _modems(trunk),
        "trunk": bool(trunk),
        "trunk_state": str(trunk.get("state") or ""),
        "sinks": sinks,
        "drill": drill,
    }


def _until(ban: dict[str, Any]) -> float | None:
    until = ban.get("until")
    return float(until) if isinstance(until, int | float) and math.isfinite(until) else None
