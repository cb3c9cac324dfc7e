"""[mirror], [cdr] and [backup]: the data Lifeline copies in (the directory) and out (records, backups)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from gateway.config.section import Section

MirrorKind = Literal["none", "lifeline", "freepbx", "kazoo", "wazo", "file"]
# What each directory source needs besides `url` (or `file`).
MIRROR_NEEDS: dict[str, tuple[str, ...]] = {
    "lifeline": ("url", "token"),
    "freepbx": ("url", "client_id", "client_secret"),
    "kazoo": ("url", "account_id", "api_key"),
    "wazo": ("url", "token"),
    "file": ("file",),
}


class MirrorConfig(Section):
    """The cloud PBX directory Lifeline mirrors (credentials live in this file: keep it 0600)."""

    source: MirrorKind = "none"
    url: str | None = Field(None, description="base URL of the directory API (https; http only on loopback)")
    file: Path | None = None
    # SecretStr: a config printed or logged shows '**********' instead of a credential.
    token: SecretStr | None = Field(None, description="bearer token (lifeline) or X-Auth-Token (wazo)")
    client_id: str | None = None
    client_secret: SecretStr | None = None
    account_id: str | None = None
    api_key: SecretStr | None = None
    ca_file: Path | None = Field(None, description="extra CA certificate(s) to trust for the directory's TLS")
    interval_s: int = Field(300, ge=10, le=86400)
    timeout_s: float = Field(30.0, gt=0, le=600)
    max_bytes: int = Field(50_000_000, ge=1024, le=1_000_000_000)
    page_size: int = Field(1000, ge=1, le=10000)
    stale_after_s: int = Field(3600, ge=60)
    # Learned mode, off by default. The risk: in SURVIVAL a phone is admitted without a password
    # when its request comes from the address and contact of a binding the cloud accepted through
    # Lifeline — anyone on the LAN who can send from that address with that contact gets in.
    learned: bool = Field(False, description="admit phones the cloud accepted, by their learned binding")

    @field_validator("url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is None:
            return value
        match = re.match(r"^(https?)://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?(/\S*)?$", value)
        if not match:
            raise ValueError("must be an http(s) URL like https://pbx.example.com/api")
        host = match.group(2).strip("[]")
        if match.group(1) == "http" and not (host == "localhost" or host.startswith("127.") or host == "::1"):
            raise ValueError("must use https (plain http is allowed on loopback only)")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _complete(self) -> MirrorConfig:
        missing = [key for key in MIRROR_NEEDS.get(self.source, ()) if getattr(self, key) is None]
        if missing:
            raise ValueError(f"source {self.source!r} needs {', '.join(missing)}")
        return self


class CdrWebhookConfig(Section):
    """Lifeline's own CDR webhook (JSON batches, Standard Webhooks signature, per-record acks)."""

    url: str = Field(..., pattern=r"^https?://")
    # SecretStr: shown as '**********' if the config is printed or logged.
    secret: SecretStr = Field(..., description="Standard Webhooks secret, whsec_<base64>")
    timeout_s: float = Field(10.0, gt=0, le=300)


class CdrFusionPbxConfig(Section):
    """FusionPBX's xml_cdr_import.php (FreeSWITCH XML CDR, HTTP Basic)."""

    url: str = Field(..., pattern=r"^https?://", description="base URL of FusionPBX, e.g. https://pbx.example.com")
    username: str = Field(..., min_length=1)
    password: SecretStr
    domain: str = Field(..., min_length=1, description="the FusionPBX domain the records belong to")
    timeout_s: float = Field(10.0, gt=0, le=300)


class CdrCsvConfig(Section):
    """Master.csv-format files written to a directory."""

    directory: Path


class CdrConfig(Section):
    """Call records: capture, retention, and the sinks they are delivered to after recovery."""

    retention_days: int = Field(30, ge=1, le=3650, description="delivered records are purged after this")
    record_normal: bool = Field(False, description="also record calls relayed to the cloud in NORMAL")
    batch_size: int = Field(500, ge=1, le=10000)
    interval_s: float = Field(60.0, ge=0.2, le=86400, description="delivery period while NORMAL")
    backoff_base_s: float = Field(1.0, gt=0, le=600)
    backoff_max_s: float = Field(300.0, gt=0, le=86400)
    ring_timeout_s: float = Field(180.0, ge=5, le=3600, description="an unanswered call with no end closes after")
    max_call_s: float = Field(14400.0, ge=60, le=604800, description="an answered call with no BYE closes after")
    gateway_id: str | None = Field(None, description="names this gateway in delivered records (default: host name)")
    webhook: CdrWebhookConfig | None = None
    fusionpbx: CdrFusionPbxConfig | None = None
    csv: CdrCsvConfig | None = None


class BackupConfig(Section):
    """Encrypted backups (`lifeline backup create`, lifeline-backup.timer): the key, and where they go."""

    key_file: Path | None = Field(None, description="AES-256 key made by `lifeline backup key FILE` (mode 0600)")
    passphrase_file: Path | None = Field(None, description="instead of key_file: a passphrase (scrypt), mode 0600")
    directory: Path | None = Field(None, description="where `backup create` writes when given no --out")
    keep: int = Field(14, ge=1, le=10000, description="this box's backups kept in directory; older ones are deleted")
    url: str | None = Field(None, pattern=r"^https://\S+$", description="also PUT every backup here (HTTPS only)")
    token_file: Path | None = Field(None, description="file holding the bearer token for url")
    ca_file: Path | None = Field(None, description="CA bundle for url's certificate (default: the system's)")
    timeout_s: float = Field(300.0, gt=0, le=3600, description="the upload's time limit")

    @model_validator(mode="after")
    def _one_secret(self) -> BackupConfig:
        if self.key_file is not None and self.passphrase_file is not None:
            raise ValueError("give key_file or passphrase_file, not both")
        return self
