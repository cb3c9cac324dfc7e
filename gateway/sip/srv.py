"""cloud.sbc as a DNS SRV name (RFC 3263 4.2, RFC 2782): its targets, in order, are the cloud's SBCs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.config import SIP_URI
from gateway.errors import DnsLookupError

if TYPE_CHECKING:
    import dns.rdtypes.IN.SRV

LOOKUP_LIMIT_S = 5.0  # one SRV lookup, every server and retry included
FALLBACK_TTL_S = 300.0  # a name without SRV records: asked again this often (a negative answer's TTL is not kept)


@dataclass(frozen=True)
class SbcList:
    """The SBCs a cloud.sbc stands for, in order (first: primary), and where they came from."""

    uris: tuple[str, ...]
    source: str  # what status and doctor show beside each SBC
    ttl_s: float | None  # how long the answer holds (None: configured, never looked up again)


def configured(uris: tuple[str, ...]) -> SbcList:
    """A list the installer wrote (or one URI with a port or an address): no lookup."""
    return SbcList(uris, "configured", None)


async def lookup(sbc: str, srv_name: str, limit_s: float = LOOKUP_LIMIT_S) -> SbcList:
    """The SRV name's targets as SBC URIs; without SRV records the name itself on its default port (RFC 3263)."""
    # Imported here: dnspython costs the daemon ~2 MiB, and most boxes name their SBCs without SRV.
    import dns.asyncresolver
    import dns.exception
    import dns.rdtypes.IN.SRV
    import dns.resolver

    try:
        # Reads /etc/resolv.conf anew each time (DHCP may change it); a file read, so off the loop.
        resolver = await asyncio.to_thread(dns.asyncresolver.Resolver)
        async with asyncio.timeout(limit_s):
            answer = await resolver.resolve(srv_name, "SRV", lifetime=limit_s)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        host = srv_name.split(".", 2)[2]
        return SbcList((sbc,), f"address of {host} (no SRV records for {srv_name})", FALLBACK_TTL_S)
    except (TimeoutError, dns.exception.Timeout) as err:
        raise DnsLookupError(f"SRV {srv_name}: no answer within {limit_s:.0f} s") from err
    except dns.exception.DNSException as err:
        raise DnsLookupError(f"SRV {srv_name}: {err}") from err
    targets = ordered([r for r in answer if isinstance(r, dns.rdtypes.IN.SRV.SRV)])
    if not targets:  # a lone "." target: the service is decidedly not available there (RFC 2782)
        raise DnsLookupError(f"SRV {srv_name}: the domain says it offers no SIP service (target '.')")
    uris = tuple(_with_target(sbc, target, port) for target, port in targets)
    return SbcList(uris, f"SRV {srv_name}", float(answer.rrset.ttl if answer.rrset else 0))


def ordered(records: list[dns.rdtypes.IN.SRV.SRV]) -> list[tuple[str, int]]:
    """The SRV records' (target, port) in the order Lifeline tries them; "." targets left out, no repeats."""
    usable = [r for r in records if r.target.to_text(omit_final_dot=True) not in ("", ".")]
    # Deterministic, not RFC 2782's weighted random pick: the list is an order of preference for
    # failover (the first SBC up takes every call), so it must not reshuffle on each lookup, which
    # would restart Kamailio and move calls between regions for nothing. Among equal priorities the
    # heavier weight goes first (the one the cloud wants most traffic on), then the name, for a tie.
    usable.sort(key=lambda r: (r.priority, -r.weight, r.target.to_text().lower()))
    pairs = [(r.target.to_text(omit_final_dot=True).lower(), int(r.port)) for r in usable]
    return list(dict.fromkeys(pairs))


def _with_target(sbc: str, target: str, port: int) -> str:
    """cloud.sbc's URI with its host replaced by an SRV target and its port (scheme and transport kept)."""
    match = SIP_URI.match(sbc)
    if match is None:  # config validation already refused this
        raise DnsLookupError(f"cloud.sbc = {sbc!r}: not a SIP URI")
    return sbc[: match.start("host")] + f"{target}:{port}" + sbc[match.end("host") :]


def refresh_after(ttl_s: float | None, floor_s: float, ceiling_s: float) -> float:
    """When to look the name up again: its TTL, held between the configured floor and ceiling."""
    return min(max(ttl_s if ttl_s is not None else ceiling_s, floor_s), ceiling_s)
