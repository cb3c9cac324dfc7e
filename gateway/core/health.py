"""Runs the probes on their schedules, keeps their statistics, says where a break is, and feeds the mode controller."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import structlog

from gateway.config import Config
from gateway.core.fallback import FallbackTimers, RttEstimator, fallback_timers
from gateway.core.mode import Mode, ModeController
from gateway.core.probes import (
    DnsProbe,
    HttpsProbe,
    LanProbe,
    Probe,
    ProbeResult,
    SbcSetProbe,
    SipOptionsProbe,
    is_ip,
)
from gateway.listeners import AsyncListeners
from gateway.sip.options import SipTarget
from gateway.sip.tls import cloud_ca_list

log = structlog.get_logger("health")

# What each of HealthMonitor.where()'s answers means, in words an installer reads (status, the page).
WHERE = {
    "ok": "cloud reachable",
    "lan": "LAN: the upstream router does not answer",
    "wan": "WAN: neither the cloud's SIP edge nor its API answers",
    "cloud_sip": "cloud SIP edge does not answer (its API does)",
    "cloud_api": "cloud API does not answer (SIP does)",
    "dns": "DNS: the cloud's names do not resolve (cached addresses still used)",
}


@dataclass
class ProbeStats:
    """The recent history of one probe."""

    name: str
    kind: str
    window: int
    outcomes: deque[bool] = field(init=False)
    last: ProbeResult | None = None
    last_at: float | None = None
    last_ok_at: float | None = None
    misses: int = 0

    def __post_init__(self) -> None:
        self.outcomes = deque(maxlen=self.window)

    def add(self, result: ProbeResult) -> None:
        """Account one result."""
        self.outcomes.append(result.ok)
        self.last, self.last_at = result, time.time()
        self.misses = 0 if result.ok else self.misses + 1
        if result.ok:
            self.last_ok_at = self.last_at

    @property
    def ok(self) -> bool | None:
        """The last outcome, None before the first."""
        return None if self.last is None else self.last.ok

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for the status."""
        loss = self.outcomes.count(False) / len(self.outcomes) if self.outcomes else None
        return {
            "kind": self.kind,
            "ok": self.ok,
            "rtt_ms": None if self.last is None or self.last.rtt_ms is None else round(self.last.rtt_ms, 1),
            "loss": None if loss is None else round(loss, 3),
            "samples": len(self.outcomes),
            "misses_in_a_row": self.misses,
            "detail": None if self.last is None else self.last.detail,
            "at": self.last_at,
            "last_ok_at": self.last_ok_at,
        }


def diagnose(sip: bool | None, api: bool | None, dns: bool | None, lan: bool | None) -> str:
    """Where the break is: ok, lan, wan, cloud_sip, cloud_api, dns (None = not probed / not yet)."""
    if lan is False:
        return "lan"
    if sip is False and api is False:
        return "wan"
    if sip is False:
        return "cloud_sip"
    if dns is False:
        return "dns"  # an API reached by name fails with it: DNS is the cause to report
    if api is False:
        return "cloud_api"
    return "ok"


def build_probes(config: Config) -> tuple[SbcSetProbe | None, list[Probe]]:
    """The probes this configuration calls for."""
    health = config.health
    sip = None
    if config.cloud.sbc:
        # Over TLS, checked as Kamailio checks it: a probe that trusts what Kamailio refuses says "up" wrongly.
        ca_file, verify = cloud_ca_list(config), config.cloud.tls_verify
        sip = SbcSetProbe(
            [SipOptionsProbe(uri, health.sip_timeout_s, ca_file=ca_file, verify=verify) for uri in config.cloud.sbcs]
        )
    others: list[Probe] = []
    hosts = [SipTarget.from_uri(uri).host for uri in config.cloud.sbcs]
    if health.api_url:
        others.append(HttpsProbe(health.api_url, health.other_timeout_s, health.api_ca_file))
        hosts.append(urlsplit(health.api_url).hostname or "")
    names = sorted({h for h in hosts if h and not is_ip(h)})
    if names:
        others.append(DnsProbe(names, health.other_timeout_s))
    if sip is not None and health.lan_target != "off":
        target = None if health.lan_target == "gateway" else health.lan_target
        others.append(LanProbe(target, health.other_timeout_s))
    return sip, others


class HealthMonitor:
    """Probes the cloud on a schedule and reports each SIP outcome to the mode controller."""

    def __init__(
        self, config: Config, controller: ModeController, sip: SbcSetProbe | None, others: list[Probe]
    ) -> None:
        self.config = config.health
        self.controller = controller
        self.sip = sip
        self.others = others
        window = self.config.window
        self.stats = {p.name: ProbeStats(p.name, p.kind, window) for p in ([sip] if sip else []) + others}
        self._tasks: list[asyncio.Task[None]] = []
        self._inflight: set[asyncio.Task[None]] = set()
        self._hurry = asyncio.Event()
        # The per-request fallback's wait follows the cloud's round trip (gateway.core.fallback).
        self.rtt = RttEstimator()
        self.fallback = fallback_timers(self.rtt, config.fallback, suspect=False)
        self._fallback_config = config.fallback
        self.on_fallback: AsyncListeners[[FallbackTimers]] = AsyncListeners("fallback timers")
        # Each SBC up or down, in order, after every round of probes (Kamailio's dispatcher follows it).
        self.on_sbcs: AsyncListeners[[list[bool]]] = AsyncListeners("sbc states")

    def set_sbcs(self, config: Config, source: str, addresses: tuple[str | None, ...] = ()) -> None:
        """Probe config's SBC list (an SRV name's answer) and resolve its names, keeping what is known of each SBC."""
        sip, others = build_probes(config)
        if self.sip is not None and sip is not None:
            # The addresses the daemon resolved (or last knew): a restart while DNS is down still probes them.
            for sbc, address in zip(sip.probes, addresses, strict=False):
                if address is not None:
                    sbc.know(address)
            self.sip.replace(sip.probes, source)
        hosts = next((p.hosts for p in others if isinstance(p, DnsProbe)), [])
        for probe in self.others:
            if isinstance(probe, DnsProbe):
                probe.hosts = hosts

    def where(self) -> str:
        """Where the break is, from the latest probe results."""
        by_kind: dict[str, bool | None] = {}
        for stats in self.stats.values():
            by_kind[stats.kind] = stats.ok
        return diagnose(by_kind.get("sip"), by_kind.get("api"), by_kind.get("dns"), by_kind.get("lan"))

    def status(self) -> dict[str, Any]:
        """Each probe's last result, RTT and loss, and the diagnosis."""
        return {
            "where": self.where(),
            "probes": {name: s.as_dict() for name, s in self.stats.items()},
            "fallback_wait_ms": self.fallback.wait_ms,
            "cloud_srtt_ms": None if self.rtt.srtt_ms is None else round(self.rtt.srtt_ms, 1),
            "sbcs": self.sip.status() if self.sip is not None else [],
        }

    def evidence(self) -> dict[str, Any]:
        """What a mode change is recorded with."""
        return self.status()

    async def start(self) -> None:
        """Start the probe loops."""
        if self.sip is not None:
            self._tasks.append(asyncio.create_task(self._sip_loop(self.sip), name="probe-sip"))
        if self.others:
            self._tasks.append(asyncio.create_task(self._others_loop(), name="probe-others"))

    async def stop(self) -> None:
        """Stop probing."""
        for task in [*self._tasks, *self._inflight]:
            task.cancel()
        for task in [*self._tasks, *self._inflight]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    def _interval(self) -> float:
        suspect = self.controller.status().detected is Mode.SUSPECT
        return self.config.suspect_interval_s if suspect else self.config.sip_interval_s

    async def _sip_loop(self, probe: SbcSetProbe) -> None:
        loop = asyncio.get_running_loop()
        while True:
            # Probes overlap: a new one leaves on schedule even while the last is still waiting.
            task = asyncio.create_task(self._sip_once(probe))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            sent = loop.time()
            # Wait out the interval, but re-read it when a miss turns the mode SUSPECT, so
            # that the faster pace starts at once rather than after a whole normal interval.
            while (remaining := sent + self._interval() - loop.time()) > 0:
                self._hurry.clear()
                try:
                    async with asyncio.timeout(remaining):
                        await self._hurry.wait()
                except TimeoutError:
                    break

    async def _sip_once(self, probe: SbcSetProbe) -> None:
        result = await probe.check()
        await self.on_sbcs.emit(probe.up())
        stats = self.stats[probe.name]
        stats.add(result)
        if not result.ok:
            log.info("probe missed", probe=probe.name, detail=result.detail)
        elif result.rtt_ms is not None:
            self.rtt.add(result.rtt_ms)
        await self._update_fallback(suspect=stats.misses > 0)
        await self.controller.observe_probe(result.ok, self.evidence())
        if self.controller.status().detected is Mode.SUSPECT:
            self._hurry.set()

    async def _update_fallback(self, *, suspect: bool) -> None:
        timers = fallback_timers(self.rtt, self._fallback_config, suspect=suspect)
        # Kamailio hears of a change worth an RPC only: more than a tenth, or down to the floor (a miss).
        moved = abs(timers.wait_ms - self.fallback.wait_ms) > max(20, self.fallback.wait_ms // 10)
        if timers == self.fallback or not (moved or timers.wait_ms == self._fallback_config.floor_ms):
            return
        log.info("fallback wait", old_ms=self.fallback.wait_ms, new_ms=timers.wait_ms, suspect=suspect)
        self.fallback = timers
        await self.on_fallback.emit(timers)

    async def _others_loop(self) -> None:
        previous = self.where()
        while True:
            results = await asyncio.gather(*(p.check() for p in self.others))
            for probe, result in zip(self.others, results, strict=True):
                self.stats[probe.name].add(result)
            where = self.where()
            if where != previous:
                log.warning("diagnosis changed", old=previous, new=where)
                previous = where
            await asyncio.sleep(self.config.other_interval_s)
