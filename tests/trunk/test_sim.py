"""The simulator is faithful to modems in the field where a driver could be fooled: raw pty I/O, no driver."""

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
        # Replies are looked for anywhere in what came: the modem's unsolicited lines (RDY, network
        # registration) may follow them at any moment (fresh-clone run 54).
        port.send("AT")
        await eventually(lambda: b"\r\nOK\r\n" in port.data, "OK to AT")
        assert port.data.startswith(b"AT\r")  # echoed
        port.data.clear()
        port.send("ATE0")
        await eventually(lambda: b"\r\nOK\r\n" in port.data, "OK to ATE0")
        port.data.clear()
        port.send("AT+CSQ")
        await eventually(lambda: b"OK\r\n" in port.data, "the +CSQ reply")
        assert bytes(port.data).replace(b"\r\nRDY\r\n", b"").startswith(b"\r\n")  # no echo any more
        port.data.clear()
        port.send("AT+NOSUCH")
        await eventually(lambda: b"\r\nERROR\r\n" in port.data, "ERROR for an unknown command")
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
        # Paced at 50 frames a second: never ahead of the clock, not a burst (a loaded machine may
        # make it late, and then it catches up only to where the clock says it should be).
        frames, elapsed = (len(audio.data) - size) / 320, time.monotonic() - start
        assert frames <= 50 * elapsed + 3, (frames, elapsed)
        assert tones.dominant(bytes(audio.data[-3200:]), (1000.0, 2000.0)) == 1000.0
    finally:
        at.close()
        audio.close()
        await sim.stop()


async def exchange(port: RawPort, command: str) -> str:
    """Send one command and return what came back up to its final result (URCs may be in it)."""
    port.data.clear()
    port.send(command)
    await eventually(lambda: b"OK\r\n" in port.data or b"ERROR\r\n" in port.data, f"the reply to {command}")
    return bytes(port.data).decode()


async def booted(sim: SimModem) -> RawPort:
    """The AT port of a sim that has finished booting (its start-up URCs are out), echo off."""
    assert sim.at_port is not None
    port = RawPort(sim.at_port.name)
    await eventually(lambda: sim.registered_at is not None, "the modem to boot and register")
    await exchange(port, "ATE0")
    return port


async def test_cpcmfrm_switches_the_sim7600_to_640_byte_frames_at_16_khz(tmp_path: Path) -> None:
    far = FarEnd(source=tones.Tone((1000.0,), rate=16000), answer_after_s=0.1)
    sim = SimModem(SimConfig(Family.SIMCOM, time_scale=0.02, drift_ppm=0), tmp_path, far)
    await sim.start()
    assert sim.audio_port is not None
    at, audio = await booted(sim), RawPort(sim.audio_port.name)
    try:
        assert "+CPCMFRM: 0" in await exchange(at, "AT+CPCMFRM?")  # 8 kHz until told otherwise
        assert "+CPCMFRM: (0-1)" in await exchange(at, "AT+CPCMFRM=?")
        assert (await exchange(at, "AT+CPCMFRM=2")).endswith("ERROR\r\n")
        assert (await exchange(at, "AT+CPCMFRM=1")).endswith("OK\r\n")
        assert "+CPCMFRM: 1" in await exchange(at, "AT+CPCMFRM?")
        await exchange(at, "AT+CLCC=1")
        at.send("ATD+4930123456;")
        await eventually(lambda: b"VOICE CALL: BEGIN" in at.data, "the call to be answered")
        at.send("AT+CPCMREG=1")
        await eventually(lambda: len(audio.data) >= 640, "the first frame")
        start, size = time.monotonic(), len(audio.data)
        await eventually(lambda: len(audio.data) >= size + 640 * 50, "a second of PCM")
        rate = (len(audio.data) - size) / 640 / (time.monotonic() - start)
        assert 40 < rate < 60, rate  # still 50 frames a second: twice the bytes, not twice the frames
        assert tones.dominant(bytes(audio.data[-6400:]), (1000.0, 2000.0), rate=16000) == 1000.0
        os.write(audio.fd, tones.Tone((2000.0,), rate=16000).read(3200))  # the host's side, at 16 kHz too
        await eventually(lambda: len(far.heard) >= 6400, "the far end to hear us")
        assert tones.dominant(bytes(far.heard[-6400:]), (1000.0, 2000.0), rate=16000) == 2000.0
    finally:
        at.close()
        audio.close()
        await sim.stop()


async def test_only_the_sim7600_has_cpcmfrm(tmp_path: Path) -> None:
    for family in (Family.QUECTEL, Family.HUAWEI):
        sim = SimModem(SimConfig(family, time_scale=0.02), tmp_path / family.value)
        await sim.start()
        port = await booted(sim)
        try:
            assert (await exchange(port, "AT+CPCMFRM=1")).endswith("ERROR\r\n"), family
        finally:
            port.close()
            await sim.stop()


async def test_gains_are_taken_in_each_familys_documented_range_only(tmp_path: Path) -> None:
    cases = {
        Family.SIMCOM: [("AT+CMICGAIN=8", True), ("AT+CMICGAIN=9", False), ("AT+COUTGAIN=0", True)],
        Family.QUECTEL: [("AT+QMIC=65535,100", True), ("AT+QMIC=65536", False), ("AT+QRXGAIN=8192", True)],
    }
    for family, commands in cases.items():
        sim = SimModem(SimConfig(family, time_scale=0.02), tmp_path / family.value)
        await sim.start()
        port = await booted(sim)
        try:
            for command, ok in commands:
                reply = await exchange(port, command)
                assert reply.endswith("\r\nOK\r\n" if ok else "ERROR\r\n"), (command, reply)
            assert (await exchange(port, "AT+CMICGAIN=-1")).endswith("ERROR\r\n")
        finally:
            port.close()
            await sim.stop()
        if family is Family.SIMCOM:
            assert sim.gains == {"+CMICGAIN": (8,), "+COUTGAIN": (0,)}
        else:
            assert sim.gains == {"+QMIC": (65535, 100), "+QRXGAIN": (8192,)}
