"""TOML configuration, validated with pydantic; every error names the key, the value and what is allowed."""

# One module a group of tables (sip, health, trunk, data, box), the whole model (model) and the loader;
# what callers use is re-exported here, so `from gateway.config import X` stays the one import.
from __future__ import annotations

from gateway.config.box import ApiConfig, HardwareConfig, LogConfig, PathsConfig
from gateway.config.data import (
    MIRROR_NEEDS,
    BackupConfig,
    CdrConfig,
    CdrCsvConfig,
    CdrFusionPbxConfig,
    CdrWebhookConfig,
    MirrorConfig,
    MirrorKind,
)
from gateway.config.ha import HaConfig
from gateway.config.health import AlertsConfig, FallbackConfig, HealthConfig, SurvivalConfig
from gateway.config.loader import DEFAULT_PATHS, SECRET_SHOWN, URL_PASSWORD, load, parse
from gateway.config.model import Config
from gateway.config.sip import SIP_URI, CloudConfig, SipConfig, Transport
from gateway.config.trunk import (
    EXTENSION,
    DrillConfig,
    EmergencyConfig,
    TrunkConfig,
    TrunkModemConfig,
    TrunkReach,
)

__all__ = [
    "DEFAULT_PATHS",
    "EXTENSION",
    "MIRROR_NEEDS",
    "SECRET_SHOWN",
    "SIP_URI",
    "URL_PASSWORD",
    "AlertsConfig",
    "ApiConfig",
    "BackupConfig",
    "CdrConfig",
    "CdrCsvConfig",
    "CdrFusionPbxConfig",
    "CdrWebhookConfig",
    "CloudConfig",
    "Config",
    "DrillConfig",
    "EmergencyConfig",
    "FallbackConfig",
    "HaConfig",
    "HardwareConfig",
    "HealthConfig",
    "LogConfig",
    "MirrorConfig",
    "MirrorKind",
    "PathsConfig",
    "SipConfig",
    "SurvivalConfig",
    "Transport",
    "TrunkConfig",
    "TrunkModemConfig",
    "TrunkReach",
    "load",
    "parse",
]
