"""Every fault known from modems in the field, injected on a READY modem of every family it applies to.

Each test injects one fault, checks what the user sees in the modem's status while it lasts, lets
the driver recover on its own (the `Modem` object is never restarted), then places a call and
proves audio both ways: the far end's 1 kHz tone in the frames the driver delivers, and the 2 kHz
frames the test writes in the far end's recording. Then it hangs up and sees the modem idle again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from gateway.trunk import tones
from gateway.trunk.call import CallState, EndReason
from gateway.trunk.errors import TrunkError
from gateway.trunk.link import LinkState, NoUsbReset
from gateway.trunk.profiles import PROFILES, Family
from gateway.trunk.sim import FarEnd, Network
from tests.trunk.conftest import TEST_TIMEOUTS, Rig, RigFactory, eventually, wait_state

GSM = (Family.QUECTEL, Family.SIMCOM, Family.HUAWEI)
ALL = (*GSM, Family.V253)
NUMBER = {Family.V253: "5551234"}  # an analog line dials national numbers
# Where coverage is lost and found again: the EC25 on LTE with VoLTE, the others on 2G/3G.
HOME = {Family.QUECTEL: Network.LTE_VOLTE, Family.SIMCOM: Network.GSM, Family.HUAWEI: Network.GSM}
FRAMES = 6  # 120 ms: plenty for a Goertzel verdict on a pure tone
FREQS = (1000.0, 2000.0)
# A hang costs a poll, two command timeouts and one for AT+CFUN=1,1: shorter than the shared test
# values so the module stays fast, still over ten times the slowest answer seen on loaded cores.
TIMEOUTS = replace(TEST_TIMEOUTS, command=0.25, port_drop=0.25, poll=0.2)
DEAD = 5 * TIMEOUTS.frame_gap  # the driver's verdict "the stream is dead", not just stalled


@dataclass
class Watch:
    """The rig plus every link state change the user could have seen on the status page."""

    rig: Rig
    seen: list[tuple[LinkState, LinkState, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rig.modem.on_state.add(lambda old, new, reason: self.seen.append((old, new, reason)))

    def entered(self, state: LinkState) -> list[str]:
        """The reasons given each time the link entered state."""
        return [reason for _, new, reason in self.seen if new is state]

    async def passes_through(self, state: LinkState, within: float = 15.0) -> str:
        """Wait until the link has entered state (however briefly); its reason."""
        await eventually(lambda: bool(self.entered(state)), f"the link to enter {state.value}", within)
        return self.entered(state)[0]

    async def recovers(self) -> None:
        """Wait for READY after the fault took the link out of it."""
        await eventually(lambda: bool(self.seen), "the fault to take the link out of READY")
        await wait_state(self.rig, LinkState.READY)


def number_for(rig: Rig) -> str:
    return NUMBER.get(rig.modem.profile.family, "+4930123456")


def tone_in(rig: Rig, frames: list[bytes]) -> float | None:
    """Which of our test tones the frames carry (None: silence)."""
    return tones.dominant(b"".join(frames), FREQS, rig.modem.profile.sample_rate)


async def call_in_progress(rig: Rig) -> list[bytes]:
    """Dial and wait for the far end's audio; the frames keep arriving in the list returned."""
    frames: list[bytes] = []
    rig.modem.frame_sink = frames.append
    await rig.modem.dial(number_for(rig))
    await eventually(lambda: len(frames) >= 10, "audio to flow")
    return frames


async def call_with_audio_both_ways(rig: Rig) -> None:
    """Dial, hear the far end's 1 kHz, be heard at 2 kHz, hang up, modem idle and READY."""
    modem, far = rig.modem, rig.sim.far_end
    rate = modem.profile.sample_rate
    frame = rate // 50 * 2  # 20 ms of S16LE: what the driver delivers, whatever the modem's wire format
    window = FRAMES * frame
    received = bytearray()
    heard_from = len(far.heard)
    two_khz = tones.Tone((2000.0,), rate=rate)

    def on_frame(frame: bytes) -> None:
        received.extend(frame)
        modem.write_frame(two_khz.read(len(frame) // 2))  # the modem is the clock: one out per one in

    modem.frame_sink = on_frame
    rig.events.clear()
    stalls = modem.status.stalls
    number = number_for(rig)
    await modem.dial(number)
    await eventually(lambda: modem.tracker.state is CallState.ACTIVE, "the far end to answer")
    await eventually(
        lambda: len(received) >= window + 2 * frame and len(far.heard) - heard_from >= window + 2 * frame,
        "audio both ways",
    )
    heard = bytes(far.heard[-window:])
    assert tones.dominant(bytes(received[-window:]), FREQS, rate) == 1000.0, "the far end's tone did not reach us"
    assert tones.dominant(heard, FREQS, rate) == 2000.0, "our tone did not reach the far end"
    assert far.dialled[-1] == number
    assert modem.status.stalls == stalls, "a clean call counted as a stalled stream"
    await modem.hang_up()
    assert rig.events[-1].state is CallState.ENDED and rig.events[-1].reason is EndReason.LOCAL
    assert modem.tracker.state is CallState.IDLE and modem.status.call is CallState.IDLE
    assert not modem.streaming and rig.sim.call is None
    assert modem.state is LinkState.READY


async def refuses_calls(rig: Rig, shown: str) -> None:
    """While the fault lasts a call is refused with the reason the status page shows."""
    with pytest.raises(TrunkError, match="modem not ready") as refused:
        await rig.modem.dial(number_for(rig))
    assert shown in str(refused.value)


# ---------------------------------------------------------------------------------------- faults


async def command_hang(watch: Watch) -> None:
    """The modem swallows commands: two go unanswered → the ladder's first rung brings it back."""
    rig = watch.rig
    before = rig.modem.ports
    rig.sim.hang_commands = 2
    reason = await watch.passes_through(LinkState.RESET)
    assert "no answer" in reason and "twice in a row" in reason
    await watch.recovers()
    assert rig.modem.status.resets == 1 and rig.usb.resets == 0
    if rig.modem.profile.family is Family.V253:
        # V.250 has no reset that re-enumerates: ATZ (back to data mode), then a fresh bring-up.
        assert "ATZ" in rig.sim.commands and "AT+CFUN=1,1" not in rig.sim.commands
        assert rig.sim.resets == 0 and rig.modem.ports == before and rig.sim.fclass == 8
    else:
        # AT+CFUN=1,1 drops the ports; the modem comes back under new names and is found by id.
        assert "AT+CFUN=1,1" in rig.sim.commands and rig.sim.resets == 1
        assert rig.modem.ports is not None and before is not None and rig.modem.ports.at != before.at


async def port_hang(watch: Watch) -> None:
    """Nothing in, nothing out: the first rung cannot get through either → the USB device is reset."""
    rig = watch.rig
    before = rig.modem.ports
    rig.sim.port_hung = True
    reason = await watch.passes_through(LinkState.RESET)
    assert "no answer" in reason
    await watch.recovers()
    assert rig.usb.resets == 1 and rig.sim.resets == 1 and rig.modem.status.resets == 1
    assert rig.modem.ports is not None and before is not None and rig.modem.ports.at != before.at


async def port_hang_without_usb_reset(watch: Watch) -> None:
    """A hung modem where no hub can power-cycle it: the status says so until someone replugs it."""
    rig = watch.rig
    rig.modem.usb_reset = NoUsbReset()  # this installation has no uhubctl-capable hub
    rig.sim.port_hung = True
    await eventually(lambda: "cannot reset its USB port" in (rig.modem.status.problem or ""), "the plain problem")
    assert rig.modem.state is not LinkState.READY
    await refuses_calls(rig, "cannot reset its USB port")
    await rig.sim.replug(gap_s=20)  # someone pulls the modem out and plugs it back in
    await watch.recovers()
    assert rig.modem.status.problem is None and rig.usb.resets == 0


async def port_hang_in_call(watch: Watch) -> None:
    """The AT port hangs in a call: the user's hang-up still ends it, then the modem is reset."""
    rig = watch.rig
    await call_in_progress(rig)
    rig.sim.port_hung = True
    await rig.modem.hang_up()  # the modem does not answer AT+CHUP: the call is over for us anyway
    assert rig.events[-1].state is CallState.ENDED and rig.modem.tracker.state is CallState.IDLE
    await watch.passes_through(LinkState.RESET)
    await watch.recovers()
    assert rig.usb.resets == 1


async def unplug(watch: Watch) -> None:
    """A brown-out or a loose cable: the modem leaves the bus and re-enumerates under new names."""
    rig = watch.rig
    before = rig.modem.ports
    await rig.sim.replug(gap_s=20)  # gone for 0.4 s (scaled)
    reason = await watch.passes_through(LinkState.RESET)
    assert "port lost" in reason
    await watch.recovers()
    assert rig.modem.status.resets == 1 and rig.usb.resets == 0
    assert rig.modem.ports is not None and before is not None and rig.modem.ports.at != before.at


async def unplug_in_call(watch: Watch) -> None:
    """A brown-out in a call (a Pi's USB port cannot power a modem under load)."""
    rig = watch.rig
    await call_in_progress(rig)
    await rig.sim.replug(gap_s=10)
    # The call is over and says why: the bridge answers the phone "Trunk Line Lost".
    await eventually(lambda: rig.modem.tracker.state is CallState.IDLE, "the lost call to end")
    assert rig.events[-1].state is CallState.ENDED and rig.events[-1].reason is EndReason.LINE_LOST
    reason = await watch.passes_through(LinkState.RESET)
    assert "port lost" in reason
    await watch.recovers()
    assert rig.modem.status.resets == 1 and rig.usb.resets == 0


async def sim_removed(watch: Watch) -> None:
    """The SIM is pulled out in service, then put back (asking for its PIN again if it has one)."""
    rig = watch.rig
    rig.sim.remove_sim()
    await wait_state(rig, LinkState.SIM)
    await eventually(lambda: rig.modem.status.problem == "no SIM card", "the missing SIM to be reported")
    assert not rig.modem.status.voice and rig.modem.status.operator is None
    await refuses_calls(rig, "no SIM card")
    rig.sim.insert_sim()
    await watch.recovers()
    assert rig.modem.status.problem is None and rig.modem.status.voice
    if rig.sim.config.sim_pin:
        assert rig.sim.commands.count("AT+CPIN=****") == 2  # the card asked for its PIN again


async def no_network(watch: Watch) -> None:
    """Coverage is lost, then comes back."""
    rig = watch.rig
    home = rig.sim.config.network
    rig.sim.set_network(Network.NONE)
    await wait_state(rig, LinkState.REGISTERING)
    await eventually(lambda: (rig.modem.status.problem or "").startswith("no network"), "the lost network")
    assert not rig.modem.status.voice and rig.modem.status.operator is None
    await refuses_calls(rig, "no network")
    rig.sim.set_network(home)
    await watch.recovers()
    assert rig.modem.status.problem is None and rig.modem.status.operator == "Lab Mobile"


async def stream_stall(watch: Watch) -> None:
    """The PCM stream stops for 0.25 s in a call: counted, audio resumes, the call ends cleanly."""
    rig = watch.rig
    frames = await call_in_progress(rig)
    rig.sim.stall_stream(0.25)
    await eventually(lambda: rig.modem.status.stalls == 1, "the stall to be noticed")
    count = len(frames)
    await eventually(lambda: len(frames) > count + 10, "audio to resume")
    assert tone_in(rig, frames[-10:]) == 1000.0
    on_hook = rig.sim.commands.count("AT+VLS=0")
    rig.sim.hang_up_far_end()
    await eventually(lambda: rig.modem.tracker.state is CallState.IDLE, "the far end's hang-up")
    if rig.modem.profile.family is Family.V253:
        # An analog line stays seized after the far end's busy tone until the driver hangs up.
        await eventually(lambda: rig.sim.commands.count("AT+VLS=0") > on_hook, "the line to go back on hook")
    assert not watch.seen, "a stall that ended by itself must not reset the modem"
    assert rig.modem.status.stalls == 1


async def stream_dead(watch: Watch) -> None:
    """The PCM stream stops for good in a call (one-way audio, known on EC25): the modem is reset after the call."""
    rig = watch.rig
    frames = await call_in_progress(rig)
    rig.sim.stall_stream(math.inf)
    await eventually(lambda: time.monotonic() - rig.modem.last_frame_at > DEAD + 0.2, "a silent second")
    assert not watch.seen, "no reset in the middle of a call"
    assert tone_in(rig, frames[-10:]) == 1000.0  # it was working until it stopped
    await rig.modem.hang_up()  # the user gives up on the silent call
    reason = await watch.passes_through(LinkState.RESET)
    assert "no audio from the modem" in reason and rig.modem.status.stalls == 1
    await watch.recovers()


async def cpcmreg_first_error(watch: Watch) -> None:
    """SIM7600: the first CPCMREG=1 answers ERROR (degraded PCM) → retried, AT+CRESET after the call."""
    rig = watch.rig
    rig.sim.cpcmreg_error_next = True
    frames = await call_in_progress(rig)
    assert rig.sim.commands.count("AT+CPCMREG=1") == 2, "CPCMREG=1 not retried"
    assert tone_in(rig, frames[-10:]) is None  # what the user hears: nothing
    assert rig.modem.state is LinkState.READY  # no reset in the middle of the call
    rig.sim.hang_up_far_end()
    reason = await watch.passes_through(LinkState.RESET)
    assert "CPCMREG" in reason
    await watch.recovers()
    assert "AT+CRESET" in rig.sim.commands and not rig.sim.pcm_degraded


@dataclass(frozen=True)
class Fault:
    """One fault: how to inject it (and watch it end), which families it applies to, rig settings."""

    inject: Callable[[Watch], Awaitable[None]]
    families: tuple[Family, ...]
    rig: dict[str, Any] = field(default_factory=dict)  # more rig_factory arguments
    answer_after_s: float = 2.5  # 0.05 s scaled


FAULTS = {
    "command-hang": Fault(command_hang, ALL),
    "port-hang": Fault(port_hang, ALL),
    "port-hang-in-call": Fault(port_hang_in_call, (Family.SIMCOM, Family.V253)),
    "port-hang-without-usb-reset": Fault(port_hang_without_usb_reset, (Family.QUECTEL,)),
    "unplug": Fault(unplug, ALL),
    "unplug-in-call": Fault(unplug_in_call, ALL),
    "sim-removed": Fault(sim_removed, GSM),
    "sim-with-pin-removed": Fault(sim_removed, (Family.HUAWEI,), {"pin": "4321", "sim_pin": "4321"}),
    "no-network": Fault(no_network, GSM),
    # The far end answers later than a stall lasts: the gap between two calls must not count as one.
    "stream-stall": Fault(stream_stall, ALL, answer_after_s=10.0),
    "stream-dead": Fault(stream_dead, (Family.QUECTEL, Family.SIMCOM)),
    "cpcmreg-first-error": Fault(cpcmreg_first_error, (Family.SIMCOM,)),
}
CASES = [
    pytest.param(name, family, id=f"{name}-{family.value}")
    for name, fault in FAULTS.items()
    for family in fault.families
]


@pytest.mark.parametrize(("name", "family"), CASES)
async def test_fault_recovers_without_a_restart_and_the_next_call_has_audio_both_ways(
    rig_factory: RigFactory, name: str, family: Family
) -> None:
    fault = FAULTS[name]
    tone = tones.Tone((1000.0,), rate=PROFILES[family].sample_rate)
    far = FarEnd(source=tone, answer_after_s=fault.answer_after_s)
    network = HOME[family] if name == "no-network" else Network.LTE_VOLTE
    rig: Rig = await rig_factory(family, far_end=far, timeouts=TIMEOUTS, network=network, **fault.rig)
    await wait_state(rig, LinkState.READY)
    modem = rig.modem
    await fault.inject(Watch(rig))
    assert rig.modem is modem and modem.state is LinkState.READY
    await call_with_audio_both_ways(rig)
