"""What differs between modem families: USB ids, ports, init commands, voice check, audio commands."""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace


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
class Gain:
    """One audio gain a family takes: its AT write command and the range its AT manual gives."""

    command: str  # "AT+CMICGAIN": sent as AT+CMICGAIN=<value>
    low: int
    high: int

    def at(self, value: int) -> str:
        """The command that sets value."""
        return f"{self.command}={value}"


@dataclass(frozen=True)
class Profile:
    """One family's facts (from the vendors' AT manuals and known field faults)."""

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
    # (16 kHz command, 8 kHz command) on families whose PCM port can run at 16 kHz; one of them is in init.
    wideband: tuple[str, str] | None = None
    mic_gain: Gain | None = None  # what the far end hears from us (uplink)
    speaker_gain: Gain | None = None  # what we hear from the far end (downlink)
    # Whether the modem's PCM carries the downlink of an outgoing call before the answer: the
    # network's ringback and announcements ("the number you have called is not available"), which
    # the caller then hears as early media (SIP 183) as on any phone. Per family, with the reason.
    early_audio: bool = False

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
        # EC2x AT manual, audio chapter: AT+QMIC=<txgain>[,<txdgain>] and AT+QRXGAIN=<rxgain>, each 0–65535,
        # defaults depend on the audio mode (the manual's example reads +QRXGAIN: 20577).
        mic_gain=Gain("AT+QMIC", 0, 65535),
        speaker_gain=Gain("AT+QRXGAIN", 0, 65535),
        # AT+QPCMV=1,0 is set once at init: PCM flows on the tty whenever the voice channel is up,
        # from call setup on, so in-band ringback and announcements arrive before the answer.
        # chan_quectel relies on it too: it attaches the audio port and signals early media
        # (AST_CONTROL_PROGRESS) as soon as the outgoing call reaches the dialing state.
        early_audio=True,
    ),
    Family.SIMCOM: Profile(
        family=Family.SIMCOM,
        usb_ids=((0x1E0E, 0x9001), (0x1E0E, 0x9011)),
        at_interface=2,
        audio_interface=4,
        # AT+CPCMFRM is said at every bring-up, so a modem left at the other rate is set right.
        init=(*_GSM_COMMON, "AT+CLCC=1", "AT+CPCMFRM=0"),
        voice_check="AT+CPCMREG?",
        audio_start=AudioStart.PER_CALL,
        audio_on="AT+CPCMREG=1",
        audio_off="AT+CPCMREG=0",
        hangup="AT+CHUP",
        wideband=("AT+CPCMFRM=1", "AT+CPCMFRM=0"),  # 16 kHz: 640-byte 20 ms frames on the audio port
        # Levels 0–8 (as chan_quectel drives the SIM7600: none 0, half 4, full 8).
        mic_gain=Gain("AT+CMICGAIN", 0, 8),
        speaker_gain=Gain("AT+COUTGAIN", 0, 8),
        # No PCM before CPCMREG=1, given once the call is active (SIMCom's AT manual; chan_quectel's
        # maintained SIMCom path sends it on +CLCC active). One old fork sends it at dialing, but
        # nothing says what the PCM carries then, and a CPCMREG cycle can degrade it (a known
        # SIM7600 fault that only AT+CRESET recovers).
        early_audio=False,
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
        # chan_dongle queues AT^DDSETEX=2 right behind ATD (at_enqueue_dial), reads the voice port
        # from ^ORIG on and signals early media there (AST_CONTROL_PROGRESS): the dongle streams the
        # call's downlink before ^CONN. The driver sends it at ^ORIG (again at ^CONN if refused).
        early_audio=True,
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
        # The line's audio (the exchange's ringback, busy tone, announcements) flows as soon as
        # AT+VTR streams, but the driver cannot tell when the far end answers: the call counts as
        # answered once dialled (VCON), so the ringback reaches the caller after a 200, never as
        # early media. There is no alerting state to map to 183.
        early_audio=False,
    ),
}


WIDEBAND_RATE = 16000


def configured(family: Family, *, wideband: bool = False) -> Profile:
    """The family's profile for one modem: 16 kHz PCM (and the init command for it) when wideband."""
    base = PROFILES[family]
    if not wideband:
        return base
    if base.wideband is None:
        raise ValueError(f"the {family.value} family has no 16 kHz PCM (only simcom does, with AT+CPCMFRM=1)")
    on, off = base.wideband
    return replace(base, sample_rate=WIDEBAND_RATE, init=tuple(on if c == off else c for c in base.init))


def gain_commands(profile: Profile, mic_gain: int | None, speaker_gain: int | None) -> list[str]:
    """The AT commands that set a modem's gains; ValueError naming the setting when one cannot be."""
    family = profile.family
    if mic_gain == 0 and speaker_gain == 0:
        # Field note 3 (echo and level problems): set gains, never all zero.
        raise ValueError("mic_gain and speaker_gain are both 0: the call would be silent both ways")
    commands = []
    for key, gain, value in (
        ("mic_gain", profile.mic_gain, mic_gain),
        ("speaker_gain", profile.speaker_gain, speaker_gain),
    ):
        if value is None:
            continue
        if gain is None:
            raise ValueError(
                f"{key}: the {family.value} family has no gain command Lifeline knows (quectel, simcom do)"
            )
        if not gain.low <= value <= gain.high:
            raise ValueError(f"{key}: {value} is outside {gain.low}–{gain.high} ({gain.command} on {family.value})")
        commands.append(gain.at(value))
    return commands
