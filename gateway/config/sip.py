"""[sip] and [cloud]: Kamailio's own listener, and the cloud PBX's SBCs it relays to."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from gateway.config.section import Section

SIP_URI = re.compile(
    r"^sips?:(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(?P<port>\d{1,5}))?"
    r"(?:;transport=(?P<transport>udp|tcp|tls))?$"
)


Transport = Literal["udp", "tcp", "tls"]


class SipConfig(Section):
    """Where Kamailio listens and how it authenticates."""

    listen: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535, description="0 picks a free port")
    transports: tuple[Transport, ...] = Field(("udp", "tcp"), min_length=1)
    children: int = Field(4, ge=1, le=64)
    auth_algorithm: Literal["MD5", "SHA-256"] = "MD5"
    kamailio: str = "kamailio"
    module_path: str | None = None
    debug: int = Field(1, ge=-3, le=3)
    # The LAN is hostile: failed logins ban their source address, floods are dropped per source.
    ban_after_failures: int = Field(10, ge=1, le=1000, description="failed logins from one address that ban it")
    failure_window_s: int = Field(600, ge=10, le=86400, description="how long a failed login counts towards a ban")
    ban_s: int = Field(300, ge=1, le=86400, description="the first ban; each further ban within a day doubles")
    ban_max_s: int = Field(86400, ge=1, le=604800, description="the longest ban")
    flood_limit: int = Field(200, ge=10, le=100000, description="requests per 2 s from one address before dropping")
    max_contacts: int = Field(10, ge=1, le=1000, description="registered contacts per extension")
    max_message_bytes: int = Field(16384, ge=2048, le=65535, description="larger SIP messages are refused (513)")
    tcp_max_connections: int = Field(1024, ge=16, le=65536, description="open TCP connections, all sources")
    # Enforced by nftables (gateway/sip/firewall.py, `lifeline firewall`): Kamailio 5.6 has no per-source limit.
    tcp_per_source: int = Field(32, ge=1, le=10000, description="open TCP/TLS connections from one address")
    tcp_idle_s: int = Field(30, ge=5, le=3600, description="a TCP connection idle this long is closed")
    tls_port: int = Field(5061, ge=0, le=65535, description="TLS listener (tls in transports); 0 picks a free port")
    tls_certificate: Path | None = Field(None, description="PEM chain; without it Lifeline makes its own once")
    tls_private_key: Path | None = Field(None, description="PEM key of tls_certificate")

    @field_validator("listen")
    @classmethod
    def _ip(cls, value: str) -> str:
        ipaddress.ip_address(value)
        return value

    @model_validator(mode="after")
    def _bans_ordered(self) -> SipConfig:
        if self.ban_max_s < self.ban_s:
            raise ValueError(f"ban_max_s ({self.ban_max_s}) must not be shorter than ban_s ({self.ban_s})")
        if (self.tls_certificate is None) != (self.tls_private_key is None):
            raise ValueError("tls_certificate and tls_private_key go together (or neither: Lifeline makes its own)")
        return self


class CloudConfig(Section):
    """The cloud PBX that Lifeline relays to while it is reachable."""

    # A list is the cloud's SBCs in order of preference (primary region, secondary, ...): sbc keeps the
    # first, standby the rest; Lifeline relays to the first one that answers (Kamailio's dispatcher).
    sbc: str | None = Field(None, description="SIP URI such as sip:sbc.example.com:5060;transport=udp, or a list")
    standby: tuple[str, ...] = Field((), description="the SBCs after the first, in order (sbc = [...] sets it)")
    realm: str = Field("asterisk", description="the digest realm: no spaces, quotes or backslashes")
    ca_file: Path | None = Field(
        None, description="CA bundle for a cloud with a private CA (default: the system's CAs)"
    )
    tls_verify: bool = Field(
        True, description="check the SBC's TLS certificate; false only for a lab or a self-signed SBC"
    )
    # The cloud's traffic is told from the phones' by the socket it arrives on (and its source), so the
    # cloud may share an address with phones; 0: a free port, picked once and kept in the store.
    local_port: int = Field(0, ge=0, le=65535, description="Lifeline's own SIP port towards the cloud; 0 picks one")
    # sbc = "sip:NAME" (no port, no address) is looked up as RFC 3263 says: NAME's SRV records give the
    # SBCs in order (gateway/sip/srv.py), looked up again after their TTL, held between these bounds.
    srv_refresh_min_s: float = Field(30, ge=0.5, le=3600, description="an SRV answer is not looked up again sooner")
    srv_refresh_max_s: float = Field(3600, ge=0.5, le=86400, description="nor later, whatever its TTL")

    @field_validator("realm")
    @classmethod
    def _realm(cls, value: str) -> str:
        # Kamailio's config has it inside "...": a quote, or a backslash before the closing one, ends it wrong.
        if not re.fullmatch(r'[^\s"\\]+', value):
            raise ValueError("must not be empty or contain spaces, quotes or backslashes")
        return value

    @model_validator(mode="before")
    @classmethod
    def _sbc_list(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("sbc"), list):
            return data
        sbcs = data["sbc"]
        if not sbcs:
            raise ValueError("sbc = []: name at least one SBC, or leave sbc out")
        for index, uri in enumerate(sbcs):
            if not isinstance(uri, str) or not SIP_URI.match(uri):
                raise ValueError(
                    f"sbc[{index}] = {uri!r}: must be a SIP URI like sip:host[:port][;transport=udp|tcp|tls]"
                )
        return {**data, "sbc": sbcs[0], "standby": tuple(sbcs[1:])}

    @field_validator("sbc")
    @classmethod
    def _sip_uri(cls, value: str | None) -> str | None:
        if value is not None and not SIP_URI.match(value):
            raise ValueError("must be a SIP URI like sip:host[:port][;transport=udp|tcp|tls]")
        return value

    @field_validator("standby")
    @classmethod
    def _sip_uris(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for index, uri in enumerate(value):
            if not SIP_URI.match(uri):
                raise ValueError(f"[{index}] = {uri!r}: must be a SIP URI like sip:host[:port][;transport=udp|tcp|tls]")
        return value

    @model_validator(mode="after")
    def _one_transport(self) -> CloudConfig:
        # Lifeline talks to every SBC from one socket of its own (gateway/sip/kamailio.cfg.tmpl's top).
        kinds = {_transport(uri) for uri in self.sbcs}
        if len(kinds) > 1:
            raise ValueError(f"sbc: every SBC must use the same transport, not {' and '.join(sorted(kinds))}")
        if self.standby and self.sbc is None:
            raise ValueError("standby: needs sbc (the first SBC)")
        if self.srv_refresh_max_s < self.srv_refresh_min_s:
            raise ValueError("srv_refresh_max_s must not be shorter than srv_refresh_min_s")
        return self

    @property
    def srv_name(self) -> str | None:
        """The SRV name sbc stands for (RFC 3263 4.2), or None: a list, an address, or an explicit port."""
        match = SIP_URI.match(self.sbc or "")
        if match is None or self.standby or match["port"] or match["host"].startswith("["):
            return None
        host = match["host"].rstrip(".").lower()
        if re.fullmatch(r"[0-9.]+", host):  # an IPv4 address (the pattern admits no other kind of address here)
            return None
        service = {"udp": "_sip._udp", "tcp": "_sip._tcp", "tls": "_sips._tcp"}[_transport(self.sbc or "")]
        return f"{service}.{host}"

    @property
    def sbcs(self) -> tuple[str, ...]:
        """Every SBC in order of preference (none without a cloud)."""
        return (self.sbc, *self.standby) if self.sbc is not None else ()


def _transport(uri: str) -> str:
    """A SIP URI's transport (udp unless it says otherwise, tls for sips:)."""
    match = SIP_URI.match(uri)
    if match is None:
        return "udp"
    return match["transport"] or ("tls" if uri.startswith("sips:") else "udp")
