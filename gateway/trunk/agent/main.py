"""The agent process: pjsua2 and the modems set up, the run loop until SIGTERM, and `main`."""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import signal
import sys
from pathlib import Path

import pjsua2 as pj
import structlog

from gateway import config as config_mod
from gateway import logs
from gateway.config import DrillConfig, EmergencyConfig, TrunkConfig
from gateway.pjsafe import UserAgent
from gateway.trunk.agent.api import ControlApi
from gateway.trunk.agent.legs import Account
from gateway.trunk.agent.model import AgentSecrets, Slot, read_pin
from gateway.trunk.agent.routing import CallRouting
from gateway.trunk.alerting import EmergencyRinger
from gateway.trunk.bridge import ModemBridge
from gateway.trunk.driver import Modem
from gateway.trunk.errors import TrunkError
from gateway.trunk.link import ModemSettings, Timeouts
from gateway.trunk.pool import ModemPool
from gateway.trunk.ports import ByIdFinder, PortFinder, SysfsFinder
from gateway.trunk.profiles import Family, configured
from gateway.trunk.usbreset import SysfsUsbReset

log = structlog.get_logger("trunk.agent")


class TrunkAgent(CallRouting):
    """The agent process: pjsua2, the modems, the policy, and a small control API."""

    def __init__(
        self,
        config: TrunkConfig,
        secrets: AgentSecrets,
        data_dir: Path,
        timeouts: Timeouts,
        emergency: EmergencyConfig | None = None,
        drill: DrillConfig | None = None,
    ) -> None:
        super().__init__(config, secrets, data_dir, timeouts, emergency, drill)
        self.api = ControlApi(self)

    # ------------------------------------------------------------------ lifecycle

    def _start_pjsua(self) -> UserAgent:
        # 16 kHz when a modem delivers it, so its audio is not squeezed through 8 kHz; the
        # conference bridge resamples the 8 kHz ports (other modems, narrowband calls).
        clock_rate = 16000 if any(m.wideband for m in self.config.modems) else 8000
        ua = UserAgent(
            "Lifeline trunk agent",
            clock_rate=clock_rate,
            ptime_ms=self.config.audio_ptime_ms,
            ec_tail_ms=0,  # GSM modules cancel echo themselves; analog lines get none anyway
        )
        self.ua = ua
        # G.711 only (G.722 first with a wideband modem): the modem's audio is telephone audio
        # already. Speex or Opus would cost the Pi CPU per call, and a glitch on the line (a late
        # read, a lost byte) sends Speex into half a second of loud, clipped tone at the phone.
        wideband = any(m.wideband for m in self.config.modems)
        ua.only_codecs([*(["G722/16000/1"] if wideband else []), "PCMA/8000/1", "PCMU/8000/1"])
        ua.udp_transport("127.0.0.1")  # loopback only: Kamailio is the agent's only peer
        s = self.secrets
        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:{s.auth_user}@{s.realm}"
        acfg.regConfig.registrarUri = f"sip:{s.sip_host}:{s.sip_port}"
        acfg.regConfig.timeoutSec = 60
        acfg.regConfig.retryIntervalSec = 2
        # HA1 only: dataType 1 is PJSIP_CRED_DATA_DIGEST, so no clear password exists anywhere.
        acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", s.auth_user, 1, s.ha1))
        # Every request goes through Kamailio, whatever domain a transfer target names.
        acfg.sipConfig.proxies.append(f"sip:{s.sip_host}:{s.sip_port};lr")
        acfg.natConfig.sipOutboundUse = 0
        acfg.natConfig.contactRewriteUse = 0
        acfg.natConfig.viaRewriteUse = 0
        acfg.natConfig.sdpNatRewriteUse = 0
        # Media goes straight between the phone and the agent (Kamailio relays signalling only).
        acfg.mediaConfig.transportConfig.boundAddress = s.media_host
        account = Account(self, ua)
        ua.add_account(account, acfg)
        self.account = account
        self.ringer = EmergencyRinger(account, f"{s.sip_host}:{s.sip_port}", s.realm, clock_rate)
        return ua

    def _build_modems(self, ua: UserAgent) -> None:
        for index, mc in enumerate(self.config.modems):
            family = Family(mc.family)
            profile = configured(family, wideband=mc.wideband)  # the config checked the family can
            finder: PortFinder = (
                ByIdFinder(profile, mc.match, mc.by_id_dir) if mc.find_by == "by-id" else SysfsFinder(profile)
            )
            settings = ModemSettings(
                mc.name, read_pin(mc), self.timeouts, mic_gain=mc.mic_gain, speaker_gain=mc.speaker_gain
            )
            modem = Modem(profile, finder, settings, SysfsUsbReset())
            bridge = ModemBridge(f"modem{index}", ptime_ms=self.config.audio_ptime_ms, clock_rate=profile.sample_rate)
            ua.adopt(bridge)  # out of the conference, on this thread, before the library goes
            slot = Slot(mc.name, modem, bridge)
            slot.sim_number = mc.number
            modem.on_call.add(functools.partial(self.on_modem_call, slot))
            modem.on_dtmf.add(functools.partial(self.on_modem_dtmf, slot))
            modem.on_sms.add(self.on_sms)
            modem.on_state.add(functools.partial(self.on_link, slot))
            modem.frame_sink = functools.partial(self.on_modem_frame, slot)
            self.slots.append(slot)
        self.pool = ModemPool(list(self.slots))

    async def run(self) -> None:
        """Run until SIGTERM: pump pjsua2, drive the modems, serve the control API."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        ua = self._start_pjsua()
        try:
            self._build_modems(ua)
            for slot in self.slots:
                await slot.modem.start()
            await self.api.start()
            log.info("trunk agent running", modems=[s.name for s in self.slots], extension=self.secrets.auth_user)
            while not self._stopping.is_set():
                ua.pump(0)
                await asyncio.sleep(0.01)  # SIP needs no finer timing; media runs on pjsua2's own clock
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        for call in list(self.calls.values()):
            await self._end(call, "agent stopping")
        for slot in self.slots:
            await slot.modem.stop()
        for slot in self.slots:
            slot.bridge.disconnect()
        if self.ringer is not None:
            self.ringer.stop()
        if self.ua is not None:
            # Hangs up what is left, lets the BYEs go, takes the bridges out of the conference and
            # destroys every call and port before the library (gateway.pjsafe, rule 5). Before the
            # control API, whose cleanup waits for requests in flight: SIGKILL must not find it undone.
            self.ua.close(pump_ms=200)
            log.info("trunk SIP side closed")
        await self.api.stop()
        log.info("trunk agent stopped")


def main(argv: list[str] | None = None) -> int:
    """`python -m gateway.trunk.agent --config FILE`, secrets as one JSON line on stdin."""
    parser = argparse.ArgumentParser(prog="lifeline-trunk-agent")
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args(argv)
    config, _ = config_mod.load(args.config)
    logs.configure(config.log.level, config.log.format)
    secrets = AgentSecrets(**json.loads(sys.stdin.readline()))
    trunk = config.trunk
    timeouts = Timeouts(command=trunk.command_timeout_s, call=trunk.call_timeout_s, poll=trunk.poll_s)
    agent = TrunkAgent(config.trunk, secrets, config.data_dir, timeouts, config.emergency, config.drill)
    try:
        asyncio.run(agent.run())
    except TrunkError as err:
        log.error("trunk agent cannot start", error=str(err))
        return 2
    return 0
