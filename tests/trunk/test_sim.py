"""The simulator is faithful to the field notes where a driver could be fooled: raw pty I/O, no driver."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from gateway.trunk import tones
from gateway.trunk.profiles import Family
from gateway.trunk.sim import FarEnd, SimConfig, SimModem
from tests.trunk.conftest import eventually


class RawPort:
    """The slave side of a simulated port, read with plain os calls."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self.data = bytearray()
        self.reads = 0
        asyncio.get_running_loop().add_reader(self.fd, self._read)

    def _read(self) -> None:
        try:
            chunk = os.read(self.fd, 4096)
        except OSError:
            chunk = b""
        if chunk:
            self.reads += 1
            self.data += chunk

    def send(self, text: str) -> None:
        os.write(self.fd, text.encode() + b"\r")

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.fd)
        os.close(self.fd)


async def test_echo_until_ate0_and_crlf_framing(tmp_path: Path) -> None:
    sim = SimModem(SimConfig(Family.QUECTEL, time_scale=0.02), tmp_path)
    await sim.start()
    assert sim.at_port is not None
    port = RawPort(sim.at_port.name)
    try:
        port.send("AT")
        await eventually(lambda: port.data.endswith(b"\r\nOK\r\n"), "OK to AT")
        assert port.data.startswith(b"AT\r")  # echoed
        port.data.clear()
        port.send("ATE0")
        await eventually(lambda: port.data.endswith(b"\r\nOK\r\n"), "OK to ATE0")
        port.data.clear()
        port.send("AT+CSQ")
        await eventually(lambda: b"OK\r\n" in port.data, "the +CSQ reply")
        assert bytes(port.data).replace(b"\r\nRDY\r\n", b"").startswith(b"\r\n")  # no echo any more
        port.data.clear()
        port.send("AT+NOSUCH")
        await eventually(lambda: port.data.endswith(b"\r\nERROR\r\n"), "ERROR for an unknown command")
    finally:
        port.close()
        await sim.stop()


async def test_pcm_only_after_the_audio_command_paced_at_20_ms(tmp_path: Path) -> None:
    far = FarEnd(source=tones.Tone((1000.0,)), answer_after_s=0.1)
    sim = SimModem(SimConfig(Family.SIMCOM, time_scale=0.02, drift_ppm=0), tmp_path, far)
    await sim.start()
    assert sim.at_port is not None and sim.audio_port is not None
    at, audio = RawPort(sim.at_port.name), RawPort(sim.audio_port.name)
    try:
        at.send("AT+CLCC=1")
        await eventually(lambda: sim.registered_at is not None, "registration")
        at.send("ATD+4930123456;")
        await eventually(lambda: b"VOICE CALL: BEGIN" in at.data, "the call to be answered")
        await asyncio.sleep(0.2)  # a window in which a wrong simulator would already stream
        assert audio.data == b""  # SIM7600: nothing before AT+CPCMREG=1
        at.send("AT+CPCMREG=1")
        await eventually(lambda: len(audio.data) >= 320, "the first frame")
        start, size = time.monotonic(), len(audio.data)
        await eventually(lambda: len(audio.data) >= size + 320 * 50, "a second of PCM")
        rate = (len(audio.data) - size) / 320 / (time.monotonic() - start)
        assert 40 < rate < 60, rate  # about 50 frames a second, not a burst
        assert tones.dominant(bytes(audio.data[-3200:]), (1000.0, 2000.0)) == 1000.0
    finally:
        at.close()
        audio.close()
        await sim.stop()
