"""[health], [fallback], [survival] and [alerts]: how an outage is told, served and announced."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from gateway.config.section import Section


class FallbackConfig(Section):
    """Per-request fallback while the mode is NORMAL: an INVITE the cloud leaves unanswered is served here."""

    invite_timeout_ms: int = Field(
        2000,
        ge=200,
        le=30000,
        description="the longest wait for the cloud's first answer (and before its RTT is known)",
    )
    adaptive: bool = Field(
        True, description="wait a few of the cloud's round trips (the SIP probe's), not always the most"
    )
    rtt_factor: float = Field(4.0, ge=1.5, le=50, description="round trips to wait, plus four times their deviation")
    floor_ms: int = Field(300, ge=50, le=30000, description="the shortest wait, also once the cloud missed a probe")

    @model_validator(mode="after")
    def _floor_below_ceiling(self) -> FallbackConfig:
        if self.floor_ms > self.invite_timeout_ms:
            raise ValueError(f"floor_ms ({self.floor_ms}) must not exceed invite_timeout_ms ({self.invite_timeout_ms})")
        return self


class SurvivalConfig(Section):
    """What Lifeline grants phones while it serves them itself."""

    register_expires: int = Field(60, ge=10, le=3600)
    normal_max_expires: int = Field(3600, ge=60, le=86400)


class HealthConfig(Section):
    """Outage detection: probes, thresholds and the failback hold-down."""

    sip_interval_s: float = Field(1.0, ge=0.1, le=60, description="OPTIONS probe period in NORMAL")
    suspect_interval_s: float = Field(0.2, ge=0.05, le=60, description="probe period once a probe was missed")
    sip_timeout_s: float = Field(1.0, ge=0.1, le=30)
    # 4 misses: a hard cut is declared about 3 s after it happens (the floor is printed by
    # bench/failover), while 10 % packet loss (≈4 % of probes lost, as each probe retransmits
    # once) would need hours to produce four misses in a row.
    fail_after_misses: int = Field(4, ge=1, le=100, description="consecutive misses that mean the cloud is gone")
    window: int = Field(20, ge=2, le=1000, description="probes in the loss window")
    window_loss: float = Field(0.5, gt=0, le=1, description="loss over the window that means the cloud is gone")
    recover_after_ok: int = Field(3, ge=1, le=100, description="answers in a row that clear a suspicion")
    hold_down_s: float = Field(60, ge=0, le=86400, description="healthy time before failing back")
    hold_down_max_s: float = Field(900, ge=0, le=86400, description="cap of the hold-down as flapping grows it")
    flap_forget_s: float = Field(600, ge=0, le=86400, description="stable time in NORMAL that resets the hold-down")
    other_interval_s: float = Field(5.0, ge=0.5, le=600, description="period of the DNS, API and LAN probes")
    other_timeout_s: float = Field(2.0, ge=0.1, le=60)
    api_url: str | None = Field(None, pattern=r"^https?://", description="the cloud API endpoint to check")
    api_ca_file: Path | None = None
    lan_target: str = Field("gateway", description='"gateway" (the default route\'s router), an IP address, or "off"')

    @field_validator("lan_target")
    @classmethod
    def _lan_target(cls, value: str) -> str:
        if value not in ("gateway", "off"):
            try:
                ipaddress.ip_address(value)
            except ValueError as err:
                raise ValueError('must be "gateway", "off" or an IP address') from err
        return value


class AlertsConfig(Section):
    """Where mode changes are announced."""

    webhook_url: str | None = Field(None, pattern=r"^https?://")
    webhook_secret_file: Path | None = Field(None, description="file holding the whsec_… signing secret")
    webhook_timeout_s: float = Field(5.0, ge=0.5, le=60)
    webhook_ca_file: Path | None = Field(None, description="CA bundle for a webhook with a private certificate")
    retry_max_s: float = Field(300, ge=1, le=86400, description="longest wait between delivery attempts")

    @model_validator(mode="after")
    def _secret_with_url(self) -> AlertsConfig:
        # An unsigned alert can be forged by anyone on the path; there is no default secret.
        if self.webhook_url and self.webhook_secret_file is None:
            raise ValueError("alerts.webhook_secret_file is required when alerts.webhook_url is set")
        return self
