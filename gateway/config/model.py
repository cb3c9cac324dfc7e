"""Config: every table of the file in one validated model, and where its files go."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import ValidationInfo, field_validator

from gateway.config.box import ApiConfig, HardwareConfig, LogConfig, PathsConfig
from gateway.config.data import BackupConfig, CdrConfig, MirrorConfig
from gateway.config.ha import HaConfig
from gateway.config.health import AlertsConfig, FallbackConfig, HealthConfig, SurvivalConfig
from gateway.config.section import Section
from gateway.config.sip import CloudConfig, SipConfig
from gateway.config.trunk import DrillConfig, EmergencyConfig, TrunkConfig


class Config(Section):
    """The whole validated configuration."""

    sip: SipConfig = SipConfig()
    cloud: CloudConfig = CloudConfig()
    fallback: FallbackConfig = FallbackConfig()
    survival: SurvivalConfig = SurvivalConfig()
    health: HealthConfig = HealthConfig()
    alerts: AlertsConfig = AlertsConfig()
    paths: PathsConfig = PathsConfig()
    log: LogConfig = LogConfig()
    hardware: HardwareConfig = HardwareConfig()
    mirror: MirrorConfig = MirrorConfig()
    cdr: CdrConfig = CdrConfig()
    trunk: TrunkConfig = TrunkConfig()
    emergency: EmergencyConfig = EmergencyConfig()
    backup: BackupConfig = BackupConfig()
    api: ApiConfig = ApiConfig()
    drill: DrillConfig = DrillConfig()
    ha: HaConfig = HaConfig()

    @field_validator("drill")
    @classmethod
    def _not_a_real_emergency_number(cls, value: DrillConfig, info: ValidationInfo) -> DrillConfig:
        # The drill dials emergency_test_number for real: it must never be the country's emergency number.
        trunk = info.data.get("trunk")
        number = value.emergency_test_number
        if number is not None and isinstance(trunk, TrunkConfig) and number in trunk.emergency_list:
            raise ValueError(f"emergency_test_number {number!r} is a real emergency number in {trunk.country}")
        return value

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
