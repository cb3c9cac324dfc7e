"""What differs between modem families: USB ids, ports, init commands, voice check, audio commands."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Family(enum.StrEnum):
    """The modem families Lifeline drives."""

    QUECTEL = "quectel"  # EC25 / EG25: PCM over a tty after AT+QPCMV=1,0
    SIMCOM = "simcom"  # SIM7600: AT+CPCMREG=1 per call, PCM on its own tty
    HUAWEI = "huawei"  # E1550 / E173: AT^DDSETEX=2 per call, PCM on the voice tty
    V253 = "v253"  # analog voice modems (USR5637, Conexant): DLE-shielded stream on the AT port


class AudioStart(enum.StrEnum):
    """When the modem starts sending PCM."""

    AT_INIT = "at-init"  # configured once, flows while a call is up
    PER_CALL = "per-call"  # a command after each call is up
    STREAM = "stream"  # V.253: the AT port turns into the sample stream


@dataclass(frozen=True)
class Profile:
    """One family's facts (from the field notes in research/modems.md)."""

    family: Family
    usb_ids: tuple[tuple[int, int], ...]
    at_interface: int
    audio_interface: int | None
    init: tuple[str, ...]
    voice_check: str
    audio_start: AudioStart
    audio_on: str | None
    audio_off: str | None
    hangup: str
    sample_rate: int = 8000
    sample_width: int = 2  # bytes per sample on the wire (1 for V.253 8-bit linear)
    # Polled so the status page can show them; the reply prefix is what we parse.
    poll: tuple[str, ...] = ("AT+CSQ", "AT+CREG?", "AT+CEREG?", "AT+COPS?")

    @property
    def frame_bytes(self) -> int:
        """Bytes per 20 ms frame on the modem's audio port."""
        return self.sample_rate // 50 * self.sample_width


_GSM_COMMON = ("AT+CMEE=1", "AT+CLIP=1", "AT+CREG=2", "AT+CEREG=2", "AT+CTZU=1", "AT+CMGF=1", "AT+CNMI=2,1,0,0,0")

PROFILES: dict[Family, Profile] = {
    Family.QUECTEL: Profile(
        family=Family.QUECTEL,
        usb_ids=((0x2C7C, 0x0125), (0x2C7C, 0x0121)),
        at_interface=2,
        audio_interface=1,
        init=(*_GSM_COMMON, 'AT+QINDCFG="ccinfo",1', "AT+QPCMV=1,0"),
        voice_check="AT+QPCMV?",
        audio_start=AudioStart.AT_INIT,
        audio_on=None,
        audio_off=None,
        hangup="AT+CHUP",
    ),
    Family.SIMCOM: Profile(
        family=Family.SIMCOM,
        usb_ids=((0x1E0E, 0x9001), (0x1E0E, 0x9011)),
        at_interface=2,
        audio_interface=4,
        init=(*_GSM_COMMON, "AT+CLCC=1"),
        voice_check="AT+CPCMREG?",
        audio_start=AudioStart.PER_CALL,
        audio_on="AT+CPCMREG=1",
        audio_off="AT+CPCMREG=0",
        hangup="AT+CHUP",
    ),
    Family.HUAWEI: Profile(
        family=Family.HUAWEI,
        usb_ids=((0x12D1, 0x1001), (0x12D1, 0x1436), (0x12D1, 0x140C)),
        at_interface=2,
        audio_interface=1,
        init=_GSM_COMMON,
        voice_check="AT^CVOICE?",
        audio_start=AudioStart.PER_CALL,
        audio_on="AT^DDSETEX=2",
        audio_off=None,
        hangup="AT+CHUP",
    ),
    Family.V253: Profile(
        family=Family.V253,
        usb_ids=((0x0BAF, 0x0303), (0x0572, 0x1329)),
        at_interface=0,
        audio_interface=None,
        init=("AT+FCLASS=8", "AT+VCID=1", "AT+VSM=128,8000", "AT+VLS=0"),
        voice_check="AT+FCLASS=?",
        audio_start=AudioStart.STREAM,
        audio_on="AT+VTR",
        audio_off=None,
        hangup="AT+VLS=0",
        sample_width=1,
        poll=(),
    ),
}
