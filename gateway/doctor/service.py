"""Checks of the service: the config, the daemon and its Kamailio, the mode, the cloud, the mirror, the phones."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from gateway.config import Config
from gateway.core.probes import is_ip
from gateway.doctor.cloud_srv import running_sbcs, srv_check
from gateway.doctor.model import Check, Facts, Verdict, ago
from gateway.sip.options import SipTarget

DENIED = "Permission denied"  # strerror of EACCES: the config file is 0600, the API socket 0660
AS_ROOT = "run it as root: `sudo lifeline doctor`"
START = "`systemctl start lifeline` (or `lifeline run` in a shell); `journalctl -u lifeline -n 50` says why it stopped"
NOT_RUNNING = "the daemon is not running"
LOSS_WARN = 0.05  # the failover policy shrugs off a few lost probes; this many show a poor path
# Where health.diagnose() puts the break when the cloud's SIP edge does not answer, and what to do there.
FIX_BY_WHERE = {
    "lan": "the office router does not answer: check the network cable and the router",
    "wan": "neither the cloud's SIP edge nor its API answers: check the WAN link (router, provider)",
    "cloud_sip": "only the cloud's SIP edge is silent: ask the cloud provider whether it allows this office's address",
}
CLOUD_FIX = "check the WAN link, then whether the cloud SBC allows this office's address"


def config_check(facts: Facts) -> Check:
    """The config file parses and validates (a bad one names each key)."""
    if facts.config_error is not None:
        where = str(facts.config_path) if facts.config_path else "the config file"
        fix = f"correct the key(s) named above in {where}, then `systemctl restart lifeline`"
        if DENIED in facts.config_error:
            fix = AS_ROOT
        return Check("config", Verdict.FAIL, facts.config_error, fix)
    if facts.config_path is None:
        return Check(
            "config",
            Verdict.WARN,
            "no config file: embedded defaults (no cloud, no trunk)",
            "write /etc/lifeline/lifeline.toml (see firmware/lifeline.toml.example) or pass --config FILE",
        )
    return Check("config", Verdict.PASS, f"{facts.config_path} is valid")


def daemon_check(facts: Facts) -> Check:
    """The daemon answers on its API socket."""
    status = facts.status
    if status is not None:
        up = ago(float(status.get("uptime_s") or 0))
        detail = f"running, pid {status.get('pid')}, up {up}, version {status.get('version')}"
        return Check("daemon", Verdict.PASS, detail)
    if facts.daemon_absent:
        return Check("daemon", Verdict.FAIL, f"not running: {facts.daemon_error}", START)
    if DENIED in str(facts.daemon_error):
        return Check("daemon", Verdict.FAIL, f"cannot ask it: {facts.daemon_error}", AS_ROOT)
    fix = "`journalctl -u lifeline -n 50` says what it is stuck on; then `systemctl restart lifeline`"
    return Check("daemon", Verdict.FAIL, f"running but failing: {facts.daemon_error}", fix)


def kamailio_check(facts: Facts) -> Check:
    """Kamailio, the SIP data plane the daemon supervises, is running."""
    if facts.status is None:
        return Check("kamailio", Verdict.SKIP, f"{NOT_RUNNING} (it runs Kamailio)")
    kam = facts.status.get("sip", {}).get("kamailio") or {}
    state, restarts = kam.get("state") or "not started", int(kam.get("restarts") or 0)
    why = "`journalctl -u lifeline | grep -i kamailio` says why"
    if state != "running":
        return Check("kamailio", Verdict.FAIL, f"{state} (restarted {restarts} time(s))", f"{why}; the daemon retries")
    if restarts:
        detail = f"running, pid {kam.get('pid')}, after {restarts} restart(s) since the daemon started"
        return Check("kamailio", Verdict.WARN, detail, f"{why} it died")
    return Check("kamailio", Verdict.PASS, f"running, pid {kam.get('pid')}")


def listening_check(facts: Facts) -> Check:
    """Kamailio answers a SIP OPTIONS on its own port (sent on loopback)."""
    target = facts.sip_target
    if target is None:
        return Check("sip-port", Verdict.SKIP, "port unknown: sip.port = 0 picks one at each start; " + NOT_RUNNING)
    answer = facts.sip_answer
    if answer is not None and answer.ok:
        rtt = f", {answer.rtt_ms:.0f} ms" if answer.rtt_ms is not None else ""
        return Check("sip-port", Verdict.PASS, f"{target} answers OPTIONS ({answer.detail}{rtt})")
    detail = f"{target}: no answer to OPTIONS ({answer.detail if answer else 'not sent'})"
    if facts.status is None:
        return Check("sip-port", Verdict.FAIL, detail, START)
    fix = "Kamailio runs but is silent: check sip.listen, sip.port and the firewall; `journalctl -u lifeline`"
    return Check("sip-port", Verdict.FAIL, detail, fix)


def mode_check(facts: Facts) -> Check:
    """NORMAL with automatic detection; a mode set by hand, or an outage, is worth a word."""
    if facts.status is None:
        return Check("mode", Verdict.SKIP, NOT_RUNNING)
    mode = facts.status.get("mode") or {}
    name, override = str(mode.get("mode", "?")).upper(), mode.get("override")
    since = ago(facts.now - float(mode.get("since") or facts.now))
    if override and override != "auto":
        detail = f"{name}, set by hand {since} ago ({mode.get('reason')}): detection is overridden"
        return Check("mode", Verdict.WARN, detail, "`lifeline mode auto` once the drill is over")
    if name == "NORMAL":
        return Check("mode", Verdict.PASS, "NORMAL: the cloud serves the phones")
    detail = f"{name} for {since}: {mode.get('reason')}"
    return Check("mode", Verdict.WARN, detail, "the cloud checks say where the break is")


def _probes(facts: Facts) -> dict[str, dict[str, Any]]:
    """The daemon's probes by kind (sip, dns, api, lan)."""
    probes = ((facts.status or {}).get("health") or {}).get("probes") or {}
    return {str(p.get("kind")): p for p in probes.values()}


def _from_probe(name: str, probe: dict[str, Any] | None, subject: str, fix: str) -> Check:
    """A check from one of the daemon's probes: its last outcome, and its loss over the window."""
    if probe is None or probe.get("ok") is None:
        return Check(name, Verdict.WARN, f"{subject}: not probed yet", "run `lifeline doctor` again in a few seconds")
    detail = f"{subject}: {probe.get('detail')}"
    if not probe["ok"]:
        misses = int(probe.get("misses_in_a_row") or 0)
        return Check(name, Verdict.FAIL, detail + (f" ({misses} misses in a row)" if misses > 1 else ""), fix)
    if probe.get("rtt_ms") is not None:
        detail += f", {probe['rtt_ms']:.0f} ms"
    loss = float(probe.get("loss") or 0)
    if loss >= LOSS_WARN:
        detail += f", but {loss:.0%} of the last {probe.get('samples')} probes were lost"
        return Check(name, Verdict.WARN, detail, fix)
    return Check(name, Verdict.PASS, detail)


def cloud_names(config: Config) -> list[str]:
    """The cloud's host names that need DNS (the SBC's and the API's), as the daemon's DNS probe has them."""
    # An SRV name need not have an address of its own: the cloud-srv line checks its lookup instead.
    hosts = [SipTarget.from_uri(uri).host for uri in config.cloud.sbcs] if config.cloud.srv_name is None else []
    if config.health.api_url:
        hosts.append(urlsplit(config.health.api_url).hostname or "")
    return sorted({h for h in hosts if h and not is_ip(h)})


def cloud_checks(facts: Facts, config: Config) -> list[Check]:
    """The cloud's SIP edge, DNS and API, and the office router: what the daemon's own probes last saw."""
    sbc = config.cloud.sbc
    if sbc is None:
        fix = "set [cloud] sbc and realm in the config, then `systemctl restart lifeline`"
        alone = "no cloud configured"
        return [
            Check("cloud-sip", Verdict.WARN, "no [cloud] sbc: nothing is relayed, Lifeline serves every phone", fix),
            Check("cloud-dns", Verdict.SKIP, alone),
            Check("cloud-api", Verdict.SKIP, alone),
            Check("lan", Verdict.SKIP, alone),
        ]
    uris, sources = running_sbcs(facts, config)  # an SRV name: the targets the daemon runs with
    labels = [f"{uri} (from {sources[uri]})" if uri in sources else uri for uri in uris]
    sip = _cloud_sip(facts, labels[0]) if len(uris) == 1 else _cloud_sbcs(facts, uris, labels)
    return [*srv_check(facts, config), *sip, _cloud_dns(facts, config), _cloud_api(facts, config), _lan(facts, config)]


def _cloud_sip(facts: Facts, sbc: str) -> list[Check]:
    if facts.status is None:
        return [Check("cloud-sip", Verdict.SKIP, f"{NOT_RUNNING} (it probes the cloud)")]
    return [_from_probe("cloud-sip", _probes(facts).get("sip"), sbc, _all_down_fix(facts))]


def _all_down_fix(facts: Facts) -> str:
    where = (((facts.status or {}).get("health") or {}).get("where")) or ""
    return FIX_BY_WHERE.get(where, CLOUD_FIX) + "; phones are served locally meanwhile"


def _cloud_sbcs(facts: Facts, uris: tuple[str, ...], labels: list[str]) -> list[Check]:
    """One line per SBC (cloud-sip-1, -2, ...): one that is down only warns while another region answers."""
    names = [f"cloud-sip-{index}" for index in range(1, len(uris) + 1)]
    if facts.status is None:
        return [Check(name, Verdict.SKIP, f"{NOT_RUNNING} (it probes the cloud)") for name in names]
    shown = ((facts.status.get("health") or {}).get("sbcs")) or []
    by_uri = {str(sbc.get("uri")): sbc for sbc in shown}
    answering = [uri for uri in uris if (by_uri.get(uri) or {}).get("state") == "up"]
    checks: list[Check] = []
    for name, uri, label in zip(names, uris, labels, strict=True):
        sbc = by_uri.get(uri) or {}
        state, detail = sbc.get("state"), f"{label}: {sbc.get('detail') or 'no answer'}"
        if state == "up":
            rtt = sbc.get("rtt_ms")
            checks.append(Check(name, Verdict.PASS, detail + (f", {rtt:.0f} ms" if rtt is not None else "")))
        elif state != "down":
            checks.append(
                Check(name, Verdict.WARN, f"{label}: not probed yet", "run `lifeline doctor` again in a few seconds")
            )
        elif answering:
            fix = "ask the cloud provider about this region, or whether it allows this office's address"
            warn = f"{detail}; calls go through {answering[0]} meanwhile"
            checks.append(Check(name, Verdict.WARN, warn, fix))
        else:
            checks.append(Check(name, Verdict.FAIL, f"{detail}; no region answers", _all_down_fix(facts)))
    return checks


def _cloud_dns(facts: Facts, config: Config) -> Check:
    names = cloud_names(config)
    if not names:
        return Check("cloud-dns", Verdict.SKIP, "the cloud is configured by address: no name to resolve")
    fix = "check the DNS servers (/etc/resolv.conf, the router) with `getent hosts NAME`"
    subject = ", ".join(names)
    if facts.status is not None:
        return _from_probe("cloud-dns", _probes(facts).get("dns"), subject, fix + "; the last known address is used")
    if facts.dns is None:
        return Check("cloud-dns", Verdict.SKIP, NOT_RUNNING)
    detail = f"{subject}: {facts.dns.detail} (looked up by the doctor: {NOT_RUNNING})"
    return Check("cloud-dns", Verdict.PASS if facts.dns.ok else Verdict.FAIL, detail, None if facts.dns.ok else fix)


def _cloud_api(facts: Facts, config: Config) -> Check:
    url = config.health.api_url
    if url is None:
        return Check("cloud-api", Verdict.SKIP, "no [health] api_url (it tells a WAN cut from a cloud SIP outage)")
    if facts.status is None:
        return Check("cloud-api", Verdict.SKIP, NOT_RUNNING)
    fix = f"check the WAN and that `curl -sI {url}` answers from this box"
    return _from_probe("cloud-api", _probes(facts).get("api"), url, fix)


def _lan(facts: Facts, config: Config) -> Check:
    if config.health.lan_target == "off":
        return Check("lan", Verdict.SKIP, '[health] lan_target = "off"')
    if facts.status is None:
        return Check("lan", Verdict.SKIP, NOT_RUNNING)
    target = "the default router" if config.health.lan_target == "gateway" else config.health.lan_target
    fix = "check the cable and the router (`ip route`); a router that ignores ping: set [health] lan_target"
    return _from_probe("lan", _probes(facts).get("lan"), target, fix)


def mirror_check(facts: Facts) -> Check:
    """The extensions Lifeline can serve: mirrored recently from the cloud's directory, or imported."""
    if facts.status is None:
        return Check("mirror", Verdict.SKIP, NOT_RUNNING)
    mirror = facts.status.get("mirror") or {}
    count = int(facts.status.get("extensions") or 0)
    if not mirror.get("source"):
        if count:
            return Check("mirror", Verdict.PASS, f"no directory source; {count} extension(s) imported by hand")
        fix = "`lifeline extensions import phones.csv`, or set [mirror] source to the cloud's directory"
        return Check("mirror", Verdict.FAIL, "no extensions: no phone can log in while the cloud is gone", fix)
    source, health = mirror["source"], mirror.get("health")
    last_ok = mirror.get("last_ok")
    synced = f"last good sync {ago(facts.now - float(last_ok))} ago" if last_ok else "never synced"
    detail = f"{source}: {mirror.get('extensions', count)} extension(s), {synced}"
    error = f"; last error: {mirror['last_error']}" if mirror.get("last_error") else ""
    fix = "check [mirror] url and credentials; `lifeline mirror sync` tries now and shows the error"
    if health == "fresh":
        return Check("mirror", Verdict.PASS, detail)
    if health == "never_synced" and mirror.get("syncing"):
        return Check("mirror", Verdict.WARN, f"{source}: the first sync is running", "run `lifeline doctor` again")
    if health == "failing":
        return Check("mirror", Verdict.WARN, f"{detail}; the last good copy is served{error}", fix)
    if health == "stale":
        return Check("mirror", Verdict.FAIL, f"{detail}: stale while the cloud answers{error}", fix)
    return Check("mirror", Verdict.FAIL, f"{detail} ({health}){error}", fix)


def phones_check(facts: Facts) -> Check:
    """Phones registered through Lifeline (copies of their cloud bindings, or directly)."""
    if facts.status is None:
        return Check("phones", Verdict.SKIP, NOT_RUNNING)
    reg = facts.status.get("registrations")
    if reg is None:
        fix = "`journalctl -u lifeline | grep -i rpc`; `systemctl restart lifeline`"
        return Check("phones", Verdict.WARN, "Kamailio did not say (its JSON-RPC did not answer)", fix)
    # The trunk agent registers like a phone: it is not one of the office's phones.
    agent = 1 if ((facts.status.get("trunk") or {}).get("registered")) == 200 else 0
    phones = max(0, int(reg.get("users") or 0) - agent)
    if phones:
        return Check("phones", Verdict.PASS, f"{phones} phone(s) registered")
    sip = facts.status.get("sip") or {}
    listen = sip.get("listen")
    host = "<this box's LAN address>" if listen in (None, "0.0.0.0", "::") else listen
    fix = f"set sip:{host}:{sip.get('port')};lr as the phones' outbound proxy (README: First call with a softphone)"
    return Check("phones", Verdict.WARN, "no phone registered yet", fix)
