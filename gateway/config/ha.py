"""[ha]: two boxes as one branch survivability pair (a virtual address moved by VRRP, state over DMQ)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from gateway.config.section import Section


class HaConfig(Section):
    """Pair mode: off by default; phones point at virtual_ip, the two boxes replicate over DMQ."""

    enabled: bool = False
    peer: str | None = Field(None, description="the other box's own LAN address (DMQ and health)")
    virtual_ip: str | None = Field(None, description="the address phones use, with its prefix, e.g. 192.0.2.10/24")
    interface: str | None = Field(None, description="LAN interface for virtual_ip; default: the one with sip.listen")
    router_id: int = Field(51, ge=1, le=255, description="VRRP virtual router id, the same on both boxes")
    priority: int = Field(100, ge=1, le=254, description="VRRP priority; the higher box is active when both are well")
    dmq_port: int = Field(5090, ge=1, le=65535, description="SIP port the two Kamailios replicate over (peer only)")
    key_file: Path | None = Field(None, description="the pair's shared secret, the same file on both boxes (0600)")

    @field_validator("peer")
    @classmethod
    def _peer_ip(cls, value: str | None) -> str | None:
        if value is not None:
            ipaddress.ip_address(value)
        return value

    @field_validator("virtual_ip")
    @classmethod
    def _vip(cls, value: str | None) -> str | None:
        if value is not None:
            if "/" not in value:
                raise ValueError(f"{value!r}: give the prefix too, e.g. {value}/24")
            ipaddress.ip_interface(value)
        return value

    @model_validator(mode="after")
    def _complete(self) -> HaConfig:
        if self.enabled and (self.peer is None or self.virtual_ip is None):
            raise ValueError("enabled = true needs peer and virtual_ip")
        if self.enabled and self.key_file is None:
            raise ValueError(
                "enabled = true needs key_file: make one with `lifeline ha key /etc/lifeline/pair.key` on one box,"
                " copy it to the other (scp) and set key_file on both"
            )
        return self

    @property
    def virtual_address(self) -> str | None:
        """virtual_ip without its prefix: the address phones register to."""
        return None if self.virtual_ip is None else str(ipaddress.ip_interface(self.virtual_ip).ip)
