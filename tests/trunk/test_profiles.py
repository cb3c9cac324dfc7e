"""Per-modem audio settings: 16 kHz where the family has it, gains in each family's range, and their config errors."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.config import parse
from gateway.errors import ConfigError
from gateway.trunk.profiles import PROFILES, Family, configured, gain_commands


def trunk(**modem: Any) -> dict[str, Any]:
    return {"trunk": {"extension": "1009", "modems": [{"name": "lte0", **modem}]}}


def test_wideband_sim7600_runs_16_khz_with_640_byte_frames() -> None:
    narrow, wide = configured(Family.SIMCOM), configured(Family.SIMCOM, wideband=True)
    assert (narrow.sample_rate, narrow.frame_bytes) == (8000, 320) and "AT+CPCMFRM=0" in narrow.init
    assert (wide.sample_rate, wide.frame_bytes) == (16000, 640)
    assert "AT+CPCMFRM=1" in wide.init and "AT+CPCMFRM=0" not in wide.init
    assert wide.init.index("AT+CPCMFRM=1") == narrow.init.index("AT+CPCMFRM=0")  # the same place in the init
    assert configured(Family.QUECTEL) is PROFILES[Family.QUECTEL]
    for family in (Family.QUECTEL, Family.HUAWEI, Family.V253):
        with pytest.raises(ValueError, match=f"the {family.value} family has no 16 kHz PCM"):
            configured(family, wideband=True)


def test_gain_commands_per_family() -> None:
    assert gain_commands(PROFILES[Family.SIMCOM], 4, 8) == ["AT+CMICGAIN=4", "AT+COUTGAIN=8"]
    assert gain_commands(PROFILES[Family.QUECTEL], None, 20577) == ["AT+QRXGAIN=20577"]
    assert gain_commands(PROFILES[Family.QUECTEL], 0, 1) == ["AT+QMIC=0", "AT+QRXGAIN=1"]  # one zero is a level
    assert gain_commands(PROFILES[Family.HUAWEI], None, None) == []


def test_config_takes_wideband_and_gains_where_the_family_can() -> None:
    config = parse(trunk(family="simcom", wideband=True, mic_gain=3, speaker_gain=5))
    modem = config.trunk.modems[0]
    assert modem.wideband and (modem.mic_gain, modem.speaker_gain) == (3, 5)
    assert parse(trunk(family="quectel", mic_gain=30000)).trunk.modems[0].speaker_gain is None


@pytest.mark.parametrize(
    ("modem", "message"),
    [
        ({"family": "quectel", "wideband": True}, r"trunk.modems\[lte0\].wideband: the quectel family has no 16 kHz"),
        ({"family": "v253", "wideband": True}, r"trunk.modems\[lte0\].wideband: the v253 family"),
        ({"family": "simcom", "mic_gain": 9}, r"trunk.modems\[lte0\].mic_gain: 9 is outside 0–8 \(AT\+CMICGAIN"),
        ({"family": "simcom", "speaker_gain": 12}, r"trunk.modems\[lte0\].speaker_gain: 12 is outside 0–8"),
        ({"family": "quectel", "mic_gain": 70000}, r"trunk.modems.0.mic_gain = 70000: .*less than or equal to 65535"),
        ({"family": "huawei", "mic_gain": 3}, r"trunk.modems\[lte0\].mic_gain: the huawei family has no gain"),
        ({"family": "simcom", "mic_gain": 0, "speaker_gain": 0}, r"trunk.modems\[lte0\].mic_gain and speaker_gain"),
        ({"family": "simcom", "mic_gain": -1}, r"trunk.modems.0.mic_gain = -1"),
    ],
)
def test_config_errors_name_the_modem_the_key_and_why(modem: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(trunk(**modem))
