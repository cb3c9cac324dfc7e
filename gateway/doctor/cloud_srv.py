"""The doctor's look at cloud.sbc as a DNS SRV name: what DNS answers now, and where the running list came from."""

from __future__ import annotations

from typing import Any

from gateway.config import Config
from gateway.doctor.model import Check, Facts, Verdict
from gateway.errors import DnsLookupError
from gateway.sip.srv import SbcList, lookup

SRV_LIMIT_S = 3.0


async def srv_lookup(config: Config | None) -> SbcList | str | None:
    """The doctor's own SRV lookup of cloud.sbc (one query, daemon running or not); a string says why it failed."""
    if config is None or config.cloud.srv_name is None or config.cloud.sbc is None:
        return None
    try:
        return await lookup(config.cloud.sbc, config.cloud.srv_name, SRV_LIMIT_S)
    except DnsLookupError as err:
        return str(err)


def srv_check(facts: Facts, config: Config) -> list[Check]:
    """A line for the SRV lookup (only when cloud.sbc is a name without a port): pass, warn or fail, with a fix."""
    name = config.cloud.srv_name
    if name is None:
        return []
    found = facts.srv
    if isinstance(found, str) or found is None:
        fix = f"check the DNS servers (/etc/resolv.conf, the router) with `dig SRV {name}`"
        kept = "; the daemon keeps its last good SBC list" if facts.status is not None else ""
        return [Check("cloud-srv", Verdict.FAIL, f"{found or 'not looked up'}{kept}", fix)]
    if not found.source.startswith("SRV"):
        host = name.split(".", 2)[2]
        fix = f"publish SRV records for {name}, or give cloud.sbc a port (sip:{host}:5060) to skip the lookup"
        return [Check("cloud-srv", Verdict.WARN, f"{found.source}: the name's own address is used (RFC 3263)", fix)]
    return [Check("cloud-srv", Verdict.PASS, f"{found.source}: {', '.join(found.uris)}")]


def running_sbcs(facts: Facts, config: Config) -> tuple[tuple[str, ...], dict[str, str]]:
    """The SBCs the daemon runs with (an SRV name's targets), else the config's; and each one's source."""
    shown: list[dict[str, Any]] = ((facts.status or {}).get("health") or {}).get("sbcs") or []
    if config.cloud.srv_name is None or not shown:
        return config.cloud.sbcs, {}
    uris = tuple(str(sbc.get("uri")) for sbc in shown)
    return uris, {str(sbc.get("uri")): str(sbc.get("source") or "configured") for sbc in shown}
