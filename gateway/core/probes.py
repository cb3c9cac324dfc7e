"""Health probes: the cloud's SIP edge, DNS, the cloud API, and the LAN's upstream router."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiohttp
import icmplib
import structlog

from gateway.sip.options import SipTarget, build_options, new_ids, parse_response

log = structlog.get_logger("probes")

UDP_RETRANSMIT_S = 0.5  # SIP's T1: one retransmission inside a probe rides out a lost datagram
ADDRESS_CACHE_S = 30.0


@dataclass(frozen=True)
class ProbeResult:
    """One probe's outcome."""

    ok: bool
    rtt_ms: float | None
    detail: str


class Probe(Protocol):
    """Something that checks one dependency with its own timeout."""

    name: str
    kind: str

    async def check(self) -> ProbeResult:
        """Run one check; never raises for a failure of the thing checked."""


def is_ip(host: str) -> bool:
    """Whether host is an IP literal (needs no DNS)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class _DatagramAnswer(asyncio.DatagramProtocol):
    def __init__(self, call_id: str) -> None:
        self.call_id = call_id
        self.answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        with contextlib.suppress(ValueError):
            response = parse_response(data)
            # 1xx is not an answer to OPTIONS; a final response of any class 2–4 is.
            if response.call_id == self.call_id and response.status >= 200 and not self.answer.done():
                self.answer.set_result(response.status)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


class SipOptionsProbe:
    """OPTIONS to the cloud SBC; any 2xx–4xx answer means alive (a 404 or 403 is still an answer).

    Over TLS the SBC's certificate must lead to ca_file (None: the system's CAs), the bundle Kamailio
    checks its own connection against (gateway.sip.tls.cloud_tls), and name the SBC's host, which
    Kamailio 5.6 does not check: a wrong name makes the cloud "down". verify=False checks neither.
    """

    kind = "sip"

    def __init__(
        self, uri: str, timeout: float, name: str = "cloud-sip", *, ca_file: Path | None = None, verify: bool = True
    ) -> None:
        self.name = name
        self.uri = uri
        self.target = SipTarget.from_uri(uri)
        self.timeout = timeout
        self.ca_file, self.verify = ca_file, verify
        self._ssl: ssl.SSLContext | None = None
        self._address: str | None = self.target.host if is_ip(self.target.host) else None
        self._resolved_at = 0.0

    def know(self, address: str) -> None:
        """The address the daemon last resolved for this SBC: used when DNS fails before the probe's own lookup."""
        if self._address is None:
            self._address = address

    async def _resolve(self) -> str:
        # DNS trouble alone must not look like a dead cloud: keep using the last good address.
        if is_ip(self.target.host):
            return self.target.host
        if self._address is None or time.monotonic() - self._resolved_at > ADDRESS_CACHE_S:
            try:
                async with asyncio.timeout(self.timeout):
                    infos = await asyncio.get_running_loop().getaddrinfo(self.target.host, self.target.port)
                self._address, self._resolved_at = str(infos[0][4][0]), time.monotonic()
            except (OSError, TimeoutError):
                if self._address is None:
                    raise
        return self._address

    async def check(self) -> ProbeResult:
        """Send one OPTIONS and wait for the final answer."""
        try:
            address = await self._resolve()
            started = time.monotonic()
            async with asyncio.timeout(self.timeout):
                if self.target.transport == "udp":
                    status = await self._udp(address)
                else:
                    status = await self._stream(address)
        except TimeoutError:
            return ProbeResult(False, None, f"no answer within {self.timeout:.1f} s")
        except (OSError, ValueError, ssl.SSLError) as err:
            return ProbeResult(False, None, f"{type(err).__name__}: {err}")
        rtt = (time.monotonic() - started) * 1000
        if 200 <= status < 500:
            return ProbeResult(True, rtt, f"{status}")
        return ProbeResult(False, rtt, f"answered {status}")

    async def _udp(self, address: str) -> int:
        loop = asyncio.get_running_loop()
        call_id, branch = new_ids()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _DatagramAnswer(call_id), remote_addr=(address, self.target.port)
        )
        try:
            local = transport.get_extra_info("sockname")
            request = build_options(self.target, (local[0], local[1]), call_id, branch)
            while True:
                transport.sendto(request)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(UDP_RETRANSMIT_S):
                        return await asyncio.shield(protocol.answer)
        finally:
            transport.close()

    def _context(self) -> ssl.SSLContext:
        # Made on first use (loading a CA bundle takes a while) and kept; a missing file fails the probe.
        if self._ssl is None:
            context = ssl.create_default_context(cafile=self.ca_file)
            if not self.verify:
                context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            self._ssl = context
        return self._ssl

    async def _stream(self, address: str) -> int:
        context = self._context() if self.target.transport == "tls" else None
        reader, writer = await asyncio.open_connection(
            address, self.target.port, ssl=context, server_hostname=self.target.host if context else None
        )
        try:
            call_id, branch = new_ids()
            local = writer.get_extra_info("sockname")
            writer.write(build_options(self.target, (local[0], local[1]), call_id, branch))
            await writer.drain()
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                response = parse_response(head)
                if response.status >= 200 and response.call_id == call_id:
                    return response.status
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class SbcSetProbe:
    """Every cloud SBC probed at once: the cloud is up while any one answers (the first in order gives the RTT)."""

    kind = "sip"
    DOWN_AFTER = 2  # misses in a row that mark one SBC down (one lost datagram moves no calls)

    def __init__(self, probes: list[SipOptionsProbe], name: str = "cloud-sip") -> None:
        self.name = name
        self.probes = probes
        self.uris = [p.uri for p in probes]
        self.last: list[ProbeResult | None] = [None] * len(probes)
        self.misses = [0] * len(probes)
        self.source = "configured"  # or the SRV name the list came from (gateway/sip/cloud_list.py)

    def replace(self, probes: list[SipOptionsProbe], source: str) -> None:
        """Probe a new list of SBCs from now on; one that was in the old list keeps what is known of it."""
        known = {uri: (last, misses) for uri, last, misses in zip(self.uris, self.last, self.misses, strict=True)}
        self.probes, self.uris, self.source = probes, [p.uri for p in probes], source
        self.last = [known.get(uri, (None, 0))[0] for uri in self.uris]
        self.misses = [known.get(uri, (None, 0))[1] for uri in self.uris]

    async def check(self) -> ProbeResult:
        """Probe every SBC; ok while one of them answers."""
        results = await asyncio.gather(*(p.check() for p in self.probes))
        for index, result in enumerate(results):
            self.last[index] = result
            self.misses[index] = 0 if result.ok else self.misses[index] + 1
        answered = [(uri, r) for uri, r in zip(self.uris, results, strict=True) if r.ok]
        if len(results) == 1:
            return results[0]
        if answered:
            uri, first = answered[0]
            return ProbeResult(True, first.rtt_ms, f"{first.detail} from {uri}")
        return ProbeResult(False, None, "; ".join(f"{u}: {r.detail}" for u, r in zip(self.uris, results, strict=True)))

    def up(self) -> list[bool]:
        """Each SBC, in order: up unless it missed DOWN_AFTER probes in a row."""
        return [misses < self.DOWN_AFTER for misses in self.misses]

    def status(self) -> list[dict[str, object]]:
        """Each SBC with its state and its last round trip, in order."""
        shown: list[dict[str, object]] = []
        for uri, up, last in zip(self.uris, self.up(), self.last, strict=True):
            rtt = None if last is None or last.rtt_ms is None else round(last.rtt_ms, 1)
            state = "unknown" if last is None else ("up" if up else "down")
            detail = None if last is None else last.detail
            shown.append({"uri": uri, "state": state, "rtt_ms": rtt, "detail": detail, "source": self.source})
        return shown


class DnsProbe:
    """Resolution of the cloud's host names, apart from whether the hosts answer."""

    kind = "dns"

    def __init__(self, hosts: list[str], timeout: float, name: str = "dns") -> None:
        self.name, self.hosts, self.timeout = name, hosts, timeout

    async def check(self) -> ProbeResult:
        """Resolve every host name."""
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        failed = []
        for host in self.hosts:
            try:
                async with asyncio.timeout(self.timeout):
                    await loop.getaddrinfo(host, None)
            except (OSError, TimeoutError) as err:
                failed.append(f"{host}: {err or 'timeout'}")
        rtt = (time.monotonic() - started) * 1000
        return ProbeResult(not failed, rtt, "; ".join(failed) or f"{len(self.hosts)} name(s) resolved")


class HttpsProbe:
    """The cloud API answers HTTP at all (any status counts: a 401 still proves the path works)."""

    kind = "api"

    def __init__(self, url: str, timeout: float, ca_file: Path | None = None, name: str = "cloud-api") -> None:
        self.name, self.url, self.timeout = name, url, timeout
        self._ssl: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True

    async def check(self) -> ProbeResult:
        """One GET with a timeout; the body is not read."""
        started = time.monotonic()
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as session,
                session.get(self.url, ssl=self._ssl, allow_redirects=False) as response,
            ):
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            return ProbeResult(False, None, f"{type(err).__name__}: {err}")
        return ProbeResult(True, (time.monotonic() - started) * 1000, f"HTTP {status}")


def default_gateway(route_table: str) -> str | None:
    """The IPv4 default gateway from the text of /proc/net/route."""
    for line in route_table.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 3 and fields[1] == "00000000" and fields[2] != "00000000":
            return str(ipaddress.IPv4Address(bytes.fromhex(fields[2])[::-1]))
    return None


def lan_address(route_table: str) -> str | None:
    """This box's address towards its default router (the LAN side): what the kernel would send from."""
    router = default_gateway(route_table)
    if router is None:
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((router, 9))  # UDP: picks the route and source address, sends nothing
        except OSError:
            return None
        return str(probe.getsockname()[0])


class LanProbe:
    """The upstream router answers ping: tells a LAN fault from a WAN or cloud fault."""

    kind = "lan"

    def __init__(self, target: str | None, timeout: float, name: str = "lan") -> None:
        self.name, self.target, self.timeout = name, target, timeout

    async def check(self) -> ProbeResult:
        """Ping the configured target or the current default gateway once."""
        target = self.target
        if target is None:
            table = await asyncio.to_thread(Path("/proc/net/route").read_text)
            target = default_gateway(table)
        if target is None:
            return ProbeResult(False, None, "no default gateway")
        try:
            host = await icmplib.async_ping(target, count=1, timeout=self.timeout, privileged=os.geteuid() == 0)
        except icmplib.ICMPLibError as err:
            return ProbeResult(False, None, f"{target}: {err}")
        if host.is_alive:
            return ProbeResult(True, host.avg_rtt, f"{target} answers")
        return ProbeResult(False, None, f"{target} does not answer")
