"""TOML configuration, validated with pydantic; every error names the key, the value and what is allowed."""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gateway.errors import ConfigError
from gateway.numbering import NumberType, check_region, emergency_numbers

SIP_URI = re.compile(
    r"^sips?:(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(?P<port>\d{1,5}))?"
    r"(?:;transport=(?P<transport>udp|tcp|tls))?$"
)


Transport = Literal["udp", "tcp", "tls"]


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


class CloudConfig(_Section):
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
        return self

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


class FallbackConfig(_Section):
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


class SurvivalConfig(_Section):
    """What Lifeline grants phones while it serves them itself."""

    register_expires: int = Field(60, ge=10, le=3600)
    normal_max_expires: int = Field(3600, ge=60, le=86400)


class HealthConfig(_Section):
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


class AlertsConfig(_Section):
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


class PathsConfig(_Section):
    """Where the data and the runtime files live (defaults depend on the user)."""

    data_dir: Path | None = None
    run_dir: Path | None = None


class LogConfig(_Section):
    """Log level and format (JSON when not on a terminal, unless told otherwise)."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


MirrorKind = Literal["none", "lifeline", "freepbx", "kazoo", "wazo", "file"]
# What each directory source needs besides `url` (or `file`).
MIRROR_NEEDS: dict[str, tuple[str, ...]] = {
    "lifeline": ("url", "token"),
    "freepbx": ("url", "client_id", "client_secret"),
    "kazoo": ("url", "account_id", "api_key"),
    "wazo": ("url", "token"),
    "file": ("file",),
}


class MirrorConfig(_Section):
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


class HardwareConfig(_Section):
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


class CdrWebhookConfig(_Section):
    """Lifeline's own CDR webhook (JSON batches, Standard Webhooks signature, per-record acks)."""

    url: str = Field(..., pattern=r"^https?://")
    # SecretStr: shown as '**********' if the config is printed or logged.
    secret: SecretStr = Field(..., description="Standard Webhooks secret, whsec_<base64>")
    timeout_s: float = Field(10.0, gt=0, le=300)


class CdrFusionPbxConfig(_Section):
    """FusionPBX's xml_cdr_import.php (FreeSWITCH XML CDR, HTTP Basic)."""

    url: str = Field(..., pattern=r"^https?://", description="base URL of FusionPBX, e.g. https://pbx.example.com")
    username: str = Field(..., min_length=1)
    password: SecretStr
    domain: str = Field(..., min_length=1, description="the FusionPBX domain the records belong to")
    timeout_s: float = Field(10.0, gt=0, le=300)


class CdrCsvConfig(_Section):
    """Master.csv-format files written to a directory."""

    directory: Path


class CdrConfig(_Section):
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


class TrunkModemConfig(_Section):
    """One USB modem of the trunk, found by its by-id name or USB id (never by ttyUSBn)."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9_-]{1,32}$")
    family: Literal["quectel", "simcom", "huawei", "v253"]
    match: str = Field("", description="text in its /dev/serial/by-id names (IMEI, serial) that picks this modem")
    find_by: Literal["by-id", "usb"] = "by-id"
    by_id_dir: Path = Field(Path("/dev/serial/by-id"), description="where the by-id links are (the lab's simulator)")
    sim_pin_file: Path | None = Field(None, description="file holding the SIM PIN (mode 0600); the PIN is never logged")
    sim_pin_env: str | None = Field(
        None, pattern=r"^[A-Z_][A-Z0-9_]*$", description="environment variable with the PIN"
    )
    wideband: bool = Field(False, description="16 kHz PCM where the modem has it (simcom: AT+CPCMFRM=1)")
    mic_gain: int | None = Field(
        None, ge=0, le=65535, description="uplink gain, family units: simcom AT+CMICGAIN 0-8, quectel AT+QMIC 0-65535"
    )
    speaker_gain: int | None = Field(
        None, ge=0, le=65535, description="downlink gain: simcom AT+COUTGAIN 0-8, quectel AT+QRXGAIN 0-65535"
    )
    number: str | None = Field(
        None, pattern=r"^\+[0-9]{4,15}$", description="the SIM's own number (E.164): the emergency callback number"
    )

    @model_validator(mode="after")
    def _audio(self) -> TrunkModemConfig:
        from gateway.trunk.profiles import Family, configured, gain_commands

        try:
            profile = configured(Family(self.family), wideband=self.wideband)
        except ValueError as err:
            raise ValueError(f"trunk.modems[{self.name}].wideband: {err}") from None
        try:
            gain_commands(profile, self.mic_gain, self.speaker_gain)
        except ValueError as err:
            raise ValueError(f"trunk.modems[{self.name}].{err}") from None
        return self


TrunkReach = Literal["emergency", "national", "international"]


class TrunkConfig(_Section):
    """The GSM/LTE/analog trunk: modems, the agent's extension, dial plan and call policy."""

    modems: tuple[TrunkModemConfig, ...] = ()
    extension: str | None = Field(
        None, description="the extension the trunk agent registers as (imported like a phone)"
    )
    country: str = Field("DE", description="ISO code: national numbers, number types and emergency numbers")
    emergency_numbers: tuple[str, ...] = Field(
        (), description="extra emergency numbers (libphonenumber's for the country are built in)"
    )
    blocked_prefixes: tuple[str, ...] = Field((), description="E.164 prefixes nobody may call, e.g. +4919")
    allow_types: tuple[NumberType, ...] = Field(
        (), description="number types allowed besides fixed_line, mobile, fixed_line_or_mobile and toll_free"
    )
    deny_types: tuple[NumberType, ...] = Field((), description="number types refused although allowed by default")
    allow_premium: bool = Field(False, description='the same as allow_types = ["premium_rate"]')
    default_reach: TrunkReach = "national"
    reach: dict[str, TrunkReach] = Field(default_factory=dict, description="per extension: how far it may call")
    daily_minutes: int | None = Field(None, ge=0, description="trunk minutes a day for non-emergency calls")
    # Toll fraud runs many calls at once or one after another; a person dials a few a minute.
    calls_per_minute: int = Field(10, ge=1, le=600, description="trunk calls one extension may start in a minute")
    concurrent_calls: int = Field(2, ge=1, le=64, description="trunk calls one extension may have at once")
    ring_group: tuple[str, ...] = Field((), description="extensions that ring (in parallel) for incoming trunk calls")
    sms_admins: tuple[str, ...] = Field((), description="E.164 numbers that get alert SMS")
    call_timeout_s: float = Field(20.0, ge=10, le=120, description="ATD/ATA answer timeout; real modems take seconds")
    command_timeout_s: float = Field(5.0, ge=0.5, le=60, description="other AT commands; two misses reset the modem")
    poll_s: float = Field(30.0, ge=0.5, le=3600, description="signal, registration and clock refresh period")
    audio_ptime_ms: Literal[10, 20] = Field(10, description="pjsua2 frame: 20 saves CPU, adds ~15 ms of latency")

    @field_validator("country")
    @classmethod
    def _country(cls, value: str) -> str:
        return check_region(value)

    @property
    def emergency_list(self) -> tuple[str, ...]:
        """The emergency numbers for the dial plan, Kamailio's routing and the call records: one list."""
        return emergency_numbers(self.country, self.emergency_numbers)

    @field_validator("blocked_prefixes", "sms_admins")
    @classmethod
    def _e164(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if not re.fullmatch(r"\+[0-9]{1,15}", item):
                raise ValueError(f"{item!r} is not in E.164 form (+ and digits)")
        return value

    @field_validator("emergency_numbers")
    @classmethod
    def _short_codes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if not re.fullmatch(r"[0-9]{2,8}", item):
                raise ValueError(f"{item!r} is not an emergency short code (2 to 8 digits)")
        return value

    @model_validator(mode="after")
    def _agent_extension(self) -> TrunkConfig:
        if self.modems and not self.extension:
            raise ValueError("trunk.extension is required when trunk.modems are configured")
        names = [m.name for m in self.modems]
        if len(set(names)) != len(names):
            raise ValueError(f"trunk.modems names must be unique, got {names}")
        return self


EXTENSION = r"^\+?[0-9*#]{1,32}$"


class EmergencyConfig(_Section):
    """Emergency calls: who hears of one the moment it is dialled, and where the PSAP's call back rings.

    Besides the extensions in notify, trunk.sms_admins get an SMS and the alert webhook a signed POST.
    """

    notify: tuple[str, ...] = Field(
        (), description="extensions (front desk, security) that get a SIP MESSAGE the moment one is dialled"
    )
    ring: tuple[str, ...] = Field(
        (), description="extensions rung the moment one is dialled, the caller on the display; answered: an alert tone"
    )
    ring_s: int = Field(30, ge=1, le=300, description="how long the ring extensions ring before it is cancelled")
    callback_window_s: int = Field(
        1800, ge=0, le=86400, description="a call to the SIM this long after an emergency call rings its caller, 0: off"
    )
    callback_alone_s: int = Field(
        20, ge=0, le=600, description="how long the caller's phone rings alone before the ring group joins"
    )
    # While the cloud is up (NORMAL): "cloud" relays emergency calls like any call, "trunk" sends them
    # straight to the modem, "cloud-then-trunk" gives the cloud cloud_timeout_ms to answer at all and
    # sends the call to the modem when it does not, or when it refuses the call.
    normal: Literal["cloud", "trunk", "cloud-then-trunk"] = Field(
        "cloud-then-trunk", description="where emergency calls go while the cloud is up"
    )
    cloud_timeout_ms: int = Field(
        1000, ge=100, le=10000, description="cloud-then-trunk: the cloud's first reply must come within this"
    )

    @field_validator("notify", "ring")
    @classmethod
    def _extensions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if not re.fullmatch(EXTENSION, item):
                raise ValueError(f"{item!r} is not an extension number (digits, * and #)")
        return value


class DrillConfig(_Section):
    """`lifeline drill`: the test call's dedicated extensions and numbers (README: Drills)."""

    caller: str | None = Field(None, pattern=EXTENSION, description="dedicated test extension that places the calls")
    callee: str | None = Field(None, pattern=EXTENSION, description="dedicated test extension that answers")
    trunk_number: str | None = Field(
        None, pattern=r"^\+?[0-9]{2,24}$", description="also call this number through the trunk: answered = pass"
    )
    emergency_test_number: str | None = Field(
        None, pattern=r"^[0-9]{2,8}$", description="the network's emergency TEST number (--emergency-test), never 112"
    )
    failover_timeout_s: float = Field(10.0, ge=1, le=120, description="failover or failback slower than this fails")
    call_timeout_s: float = Field(30.0, ge=5, le=120, description="each test call must be answered within this")
    listen_s: float = Field(1.5, ge=0.5, le=10, description="how long each side of the test call listens for its tone")
    records_timeout_s: float = Field(30.0, ge=1, le=600, description="the test calls' records delivered within this")

    @model_validator(mode="after")
    def _two_extensions(self) -> DrillConfig:
        if (self.caller is None) != (self.callee is None):
            raise ValueError("caller and callee go together (two dedicated test extensions)")
        if self.caller is not None and self.caller == self.callee:
            raise ValueError("caller and callee must be two different extensions")
        if self.caller is None and (self.trunk_number or self.emergency_test_number):
            raise ValueError("trunk_number and emergency_test_number are called from caller: set caller and callee")
        return self


class BackupConfig(_Section):
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


class ApiConfig(_Section):
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


class Config(_Section):
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


DEFAULT_PATHS = (Path("/etc/lifeline/lifeline.toml"),)


SECRET_SHOWN = "**********"  # what pydantic's SecretStr shows in place of a secret
URL_PASSWORD = re.compile(r"(://[^/@\s:]*:)[^/@\s]*@")


def _describe(error: dict[str, Any], model: type[BaseModel]) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        section = _model_at(model, error["loc"][:-1])[0]
        allowed = sorted(section.model_fields) if section is not None else []
        return f"{key}: unknown key (allowed here: {', '.join(allowed)})"
    if error["type"] == "missing":
        return f"{key}: {error['msg']}"  # its input is the table around the key, not a value of it
    section, secret = _model_at(model, error["loc"])
    if secret:
        # A token written unquoted, or as a list, must not end up in a terminal, a log or an errors file.
        return f"{key} (a secret: its value is not shown): {error['msg']}"
    return f"{key} = {_hide_secrets(error.get('input'), section)!r}: {error['msg']}"


def _submodel(annotation: Any) -> type[BaseModel] | None:
    """The model inside an annotation such as X, X | None or tuple[X, ...], if there is one."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for m in map(_submodel, get_args(annotation)) if m is not None), None)


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or any(map(_is_secret, get_args(annotation)))


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[type[BaseModel] | None, bool]:
    """The model of the table at loc (None: not a table of the config), and whether loc is a secret field."""
    current: type[BaseModel] | None = model
    secret = False
    for part in loc:
        if isinstance(part, int):
            continue  # an item of a list of tables (trunk.modems) has the list's model
        field = current.model_fields.get(part) if current is not None else None
        if field is None:
            return None, secret
        current, secret = _submodel(field.annotation), _is_secret(field.annotation)
    return current, secret


def _hide_secrets(value: Any, model: type[BaseModel] | None) -> Any:
    """value (a whole table, when the table is refused) with its secret fields shown as SecretStr shows them."""
    if isinstance(value, str):
        return URL_PASSWORD.sub(rf"\1{SECRET_SHOWN}@", value)  # https://user:password@host, refused as a URL
    if isinstance(value, list):
        return [_hide_secrets(item, model) for item in value]
    if not isinstance(value, dict):
        return value
    shown = {}
    for name, item in value.items():
        inner, secret = _model_at(model, (name,)) if model is not None else (None, False)
        shown[name] = SECRET_SHOWN if secret else _hide_secrets(item, inner)
    return shown


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
