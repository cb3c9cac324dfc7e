"""[paths], [log], [hardware] and [api]: the box itself, its files, GPIO and LAN API."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from gateway.config.section import Section


class PathsConfig(Section):
    """Where the data and the runtime files live (defaults depend on the user)."""

    data_dir: Path | None = None
    run_dir: Path | None = None


class LogConfig(Section):
    """Log level and format (JSON when not on a terminal, unless told otherwise)."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class HardwareConfig(Section):
    """The appliance's GPIO: status LEDs, button and bypass relay (off on a development machine)."""

    enabled: bool = False
    pinmap: Path | None = Field(None, description="default: /etc/lifeline/pinmap.toml, else hardware/pinmap.toml")
    pin_factory: Literal["lgpio", "rpigpio", "native", "mock"] = "lgpio"
    drill_hold_s: float = Field(3.0, ge=0.2, le=30, description="button held this long starts a drill")
    reset_hold_s: float = Field(10.0, ge=0.5, le=60, description="button held this long resets the admin password")
    drill_minutes: float = Field(10.0, gt=0, le=240, description="how long a button drill stays in SURVIVAL")
    console: Path = Field(Path("/dev/tty1"), description="where a reset admin password is printed")

    @model_validator(mode="after")
    def _holds_ordered(self) -> HardwareConfig:
        if self.reset_hold_s <= self.drill_hold_s:
            raise ValueError(
                f"reset_hold_s ({self.reset_hold_s}) must be longer than drill_hold_s ({self.drill_hold_s})"
            )
        return self


class ApiConfig(Section):
    """The daemon's JSON API over HTTPS on the LAN, for vendors (bearer tokens); the CLI's unix socket is always on."""

    enabled: bool = True
    listen: str | None = Field(
        None, description="default: sip.listen, or the LAN address (the default route's) when that is every address"
    )
    port: int = Field(8443, ge=0, le=65535, description="0 picks a free port")
    certificate: Path | None = Field(
        None, description="PEM chain; default: the SIP TLS certificate (or Lifeline's own)"
    )
    private_key: Path | None = Field(None, description="PEM key of certificate")
    # Failed authentications per source address: the address is refused (429) for a time that doubles per block.
    auth_failures: int = Field(10, ge=1, le=1000, description="failed authentications from one address that block it")
    auth_window_s: float = Field(60.0, ge=1, le=86400, description="how long a failure counts towards a block")
    auth_block_s: float = Field(
        60.0, ge=1, le=86400, description="the first block; each further one within a day doubles"
    )
    auth_block_max_s: float = Field(3600.0, ge=1, le=604800, description="the longest block")
    # The status page (/ui/ on the same site): a login session ends after this long unused.
    session_idle_s: float = Field(1800.0, ge=10, le=86400, description="a status page session unused this long ends")

    @field_validator("listen")
    @classmethod
    def _lan_only(cls, value: str | None) -> str | None:
        if value is not None and ipaddress.ip_address(value).is_unspecified:
            raise ValueError("must be one address of this box (the API is for the LAN), not every address")
        return value

    @model_validator(mode="after")
    def _pair(self) -> ApiConfig:
        if (self.certificate is None) != (self.private_key is None):
            raise ValueError("certificate and private_key go together (or neither: the SIP TLS certificate is used)")
        if self.auth_block_max_s < self.auth_block_s:
            raise ValueError(
                f"auth_block_max_s ({self.auth_block_max_s}) must not be shorter than"
                f" auth_block_s ({self.auth_block_s})"
            )
        return self
