"""TOML configuration, validated with pydantic; every error names the key, the value and what is allowed."""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.errors import ConfigError

SIP_URI = re.compile(
    r"^sips?:(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(?P<port>\d{1,5}))?"
    r"(?:;transport=(?P<transport>udp|tcp|tls))?$"
)


Transport = Literal["udp", "tcp"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SipConfig(_Section):
    """Where Kamailio listens and how it authenticates."""

    listen: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535, description="0 picks a free port")
    transports: tuple[Transport, ...] = Field(("udp", "tcp"), min_length=1)
    children: int = Field(4, ge=1, le=64)
    auth_algorithm: Literal["MD5", "SHA-256"] = "MD5"
    kamailio: str = "kamailio"
    module_path: str | None = None
    debug: int = Field(1, ge=-3, le=3)

    @field_validator("listen")
    @classmethod
    def _ip(cls, value: str) -> str:
        ipaddress.ip_address(value)
        return value


class CloudConfig(_Section):
    """The cloud PBX that Lifeline relays to while it is reachable."""

    sbc: str | None = Field(None, description="SIP URI such as sip:sbc.example.com:5060;transport=udp")
    realm: str = Field("asterisk", min_length=1, pattern=r"^[^\s\"]+$")

    @field_validator("sbc")
    @classmethod
    def _sip_uri(cls, value: str | None) -> str | None:
        if value is not None and not SIP_URI.match(value):
            raise ValueError("must be a SIP URI like sip:host[:port][;transport=udp|tcp|tls]")
        return value


class FallbackConfig(_Section):
    """Per-request fallback while the mode is NORMAL."""

    invite_timeout_ms: int = Field(2000, ge=200, le=30000)


class SurvivalConfig(_Section):
    """What Lifeline grants phones while it serves them itself."""

    register_expires: int = Field(60, ge=10, le=3600)
    normal_max_expires: int = Field(3600, ge=60, le=86400)


class PathsConfig(_Section):
    """Where the data and the runtime files live (defaults depend on the user)."""

    data_dir: Path | None = None
    run_dir: Path | None = None


class LogConfig(_Section):
    """Log level and format (JSON when not on a terminal, unless told otherwise)."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class Config(_Section):
    """The whole validated configuration."""

    sip: SipConfig = SipConfig()
    cloud: CloudConfig = CloudConfig()
    fallback: FallbackConfig = FallbackConfig()
    survival: SurvivalConfig = SurvivalConfig()
    paths: PathsConfig = PathsConfig()
    log: LogConfig = LogConfig()

    @property
    def data_dir(self) -> Path:
        """Directory of the SQLite store: /var/lib/lifeline as root, ./var otherwise."""
        if self.paths.data_dir is not None:
            return self.paths.data_dir
        return Path("/var/lib/lifeline") if os.geteuid() == 0 else Path("var").absolute()

    @property
    def run_dir(self) -> Path:
        """Directory of sockets, pid files and the rendered Kamailio config."""
        if self.paths.run_dir is not None:
            return self.paths.run_dir
        return Path("/run/lifeline") if os.geteuid() == 0 else self.data_dir / "run"

    @property
    def db_path(self) -> Path:
        """The SQLite store."""
        return self.data_dir / "lifeline.db"

    @property
    def api_socket(self) -> Path:
        """The daemon's API socket that the CLI talks to."""
        return self.run_dir / "lifeline.sock"


DEFAULT_PATHS = (Path("/etc/lifeline/lifeline.toml"),)


def _describe(error: dict[str, Any], model: type[BaseModel]) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(model, error["loc"][:-1])
        return f"{key}: unknown key (allowed here: {', '.join(allowed)})"
    value = error.get("input")
    return f"{key} = {value!r}: {error['msg']}"


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    current: Any = model
    for part in loc:
        field = current.model_fields.get(part)
        if field is None or not isinstance(field.annotation, type):
            return []
        current = field.annotation
    return sorted(current.model_fields)


def parse(data: dict[str, Any], source: str = "config") -> Config:
    """Validate a parsed TOML document; ConfigError lists every bad key."""
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        lines = [_describe(dict(e), Config) for e in err.errors()]
        raise ConfigError(f"{source}: invalid configuration:\n  " + "\n  ".join(lines)) from err


def load(path: Path | None) -> tuple[Config, Path | None]:
    """Load the config file, the system one, or the embedded defaults; returns the file used."""
    candidates = [path] if path is not None else [p for p in DEFAULT_PATHS if p.exists()]
    if not candidates:
        return Config(), None
    chosen = candidates[0]
    try:
        data = tomllib.loads(chosen.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ConfigError(f"{chosen}: no such config file") from err
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{chosen}: cannot read: {err}") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{chosen}: not valid TOML: {err}") from err
    return parse(data, str(chosen)), chosen
