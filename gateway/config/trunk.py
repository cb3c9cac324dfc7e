"""[trunk], [emergency] and [drill]: the modems, the dial plan, emergency calls and the drill's test calls."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from gateway.config.section import Section
from gateway.numbering import NumberType, check_region, emergency_numbers


class TrunkModemConfig(Section):
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


class TrunkConfig(Section):
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


class EmergencyConfig(Section):
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


class DrillConfig(Section):
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
