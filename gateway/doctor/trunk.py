"""Checks of the trunk: the agent, and per modem found, SIM ready, registered, signal, voice capable."""

from __future__ import annotations

from typing import Any

from gateway.config import Config, TrunkModemConfig
from gateway.doctor.model import Check, Facts, Verdict

MODEM_CHECKS = ("modem", "sim", "network", "signal", "voice")
NOT_UP = ("absent", "probe", "reset")  # link states in which the modem has not answered AT yet
BEFORE_NETWORK = (*NOT_UP, "sim", "config")
WEAK_BARS = 1  # one bar of five: calls break up
# The driver's words for LTE with data but no voice (gateway/trunk/registration.py, voice).
NO_VOLTE = "without VoLTE"
VOLTE_FIX = "enable VoLTE/IMS for this SIM (the carrier) and on the modem, or use a network with 2G/3G"
SIM_FIX = "insert the SIM; with a PIN set sim_pin_file in [[trunk.modems]]; a PUK-locked SIM: unlock it in a phone"
ANTENNA_FIX = "move the modem or its antenna (an external antenna by a window); `lifeline trunk status` shows it"


def trunk_checks(facts: Facts, config: Config) -> list[Check]:
    """The trunk agent's and each modem's checks (a missing modem fails: no calls out in an outage)."""
    modems = config.trunk.modems
    if not modems:
        detail = "no [[trunk.modems]]: no calls out while the cloud is gone, emergency calls included"
        fix = "plug in the USB modem and add [[trunk.modems]] (name, family, match); `ls /dev/serial/by-id` names it"
        skips = [Check(name, Verdict.SKIP, "no modem configured") for name in MODEM_CHECKS[1:]]
        return [Check("modem", Verdict.FAIL, detail, fix), *skips]
    if facts.status is None:
        checks = [_found_offline(mc, facts.modem_ports.get(mc.name)) for mc in modems]
        later = "the trunk agent reports it; the daemon is not running"
        return checks + [Check(name, Verdict.SKIP, later) for name in MODEM_CHECKS[1:]]
    trunk = facts.status.get("trunk")
    if trunk is None:
        detail = "the running daemon has no trunk: it started before [[trunk.modems]] was added"
        return [Check("trunk-agent", Verdict.WARN, detail, "`systemctl restart lifeline`")]
    checks = [_agent(trunk, config.trunk.extension)]
    reported = {m.get("name"): m for m in trunk.get("modems") or []}
    for mc in modems:
        modem = reported.get(mc.name)
        if modem is None:
            checks += [
                Check(name, Verdict.SKIP, f"{mc.name}: the trunk agent does not report it") for name in MODEM_CHECKS
            ]
        else:
            checks += modem_checks(mc, modem)
    return checks


def _plug_fix(mc: TrunkModemConfig) -> str:
    if mc.find_by == "usb":
        return "plug the modem in (a powered USB hub if the Pi browns out) and check that `lsusb` lists it"
    match = f" with {mc.match!r} in its name" if mc.match else ""
    return f"plug the modem in (a powered USB hub if the Pi browns out); `ls {mc.by_id_dir}` must list it{match}"


def _found_offline(mc: TrunkModemConfig, ports: str | None) -> Check:
    """With the daemon down the doctor looks for the modem's ports itself, as the agent would."""
    if ports is None:
        return Check("modem", Verdict.FAIL, f"{mc.name}: not found", _plug_fix(mc))
    return Check("modem", Verdict.PASS, f"{mc.name}: ports found ({ports})")


def _agent(trunk: dict[str, Any], extension: str | None) -> Check:
    """The agent process runs and has registered with Kamailio as the trunk's extension."""
    state = trunk.get("state")
    if state != "running":
        detail = f"{state}" + (f": {trunk['problem']}" if trunk.get("problem") else "")
        fix = "`journalctl -u lifeline | grep -i trunk` says why; pjsua2 must be installed (install.sh does it)"
        return Check("trunk-agent", Verdict.FAIL, detail, fix)
    code = trunk.get("registered")
    if code != 200:
        detail = f"running, but not registered with Kamailio as {extension} (SIP {code})"
        fix = f"import extension {extension} like a phone (`lifeline extensions import`), or mirror it from the cloud"
        return Check("trunk-agent", Verdict.FAIL, detail, fix)
    return Check("trunk-agent", Verdict.PASS, f"running, pid {trunk.get('pid')}, registered as {extension}")


def modem_checks(mc: TrunkModemConfig, modem: dict[str, Any]) -> list[Check]:
    """Found, SIM ready, registered, signal, voice capable: from the agent's report of one modem."""
    name, state = mc.name, str(modem.get("state"))
    problem = modem.get("problem") or modem.get("reason") or state
    analog = mc.family == "v253"
    # Found.
    if state == "absent":
        found = Check("modem", Verdict.FAIL, f"{name}: not found ({modem.get('reason')})", _plug_fix(mc))
    elif state in NOT_UP:
        found = Check(
            "modem", Verdict.WARN, f"{name}: found, not answering yet ({problem})", "wait; replug it if it stays"
        )
    else:
        ident = f" ({modem['ident']})" if modem.get("ident") else ""
        found = Check("modem", Verdict.PASS, f"{name}: {modem.get('model') or mc.family}{ident}")
    # SIM ready.
    if analog:
        sim = Check("sim", Verdict.SKIP, f"{name}: analog modem, no SIM")
    elif state in NOT_UP:
        sim = Check("sim", Verdict.SKIP, f"{name}: the modem is not up")
    elif state == "sim":
        sim = Check("sim", Verdict.FAIL, f"{name}: {problem}", SIM_FIX)
    else:
        iccid = str(modem.get("iccid") or "")
        sim = Check("sim", Verdict.PASS, f"{name}: ready" + (f" (ICCID …{iccid[-4:]})" if iccid else ""))
    return [found, sim, _network(mc, modem), _signal(mc, modem), _voice(mc, modem)]


def _network(mc: TrunkModemConfig, modem: dict[str, Any]) -> Check:
    name, state = mc.name, modem.get("state")
    if mc.family == "v253":
        if state == "ready":
            return Check("network", Verdict.PASS, f"{name}: analog line ready")
        return Check("network", Verdict.SKIP, f"{name}: the analog modem is not up")
    if state in BEFORE_NETWORK:
        return Check("network", Verdict.SKIP, f"{name}: registers once the SIM is ready")
    operator, access = modem.get("operator") or "the network", modem.get("access") or "2G/3G"
    if state == "ready":
        return Check("network", Verdict.PASS, f"{name}: {operator} ({access})")
    problem = str(modem.get("problem") or modem.get("reason") or "not registered")
    if NO_VOLTE in problem:
        return Check("network", Verdict.PASS, f"{name}: {operator} (LTE, data only)")
    emergency = "; emergency calls still go out" if modem.get("emergency_only") else ""
    fix = "check the antenna, and that the SIM's network covers this place (`lifeline trunk status`)"
    if "denied" in problem:
        fix = "the network refuses this SIM: ask the carrier to enable it for voice"
    return Check("network", Verdict.FAIL, f"{name}: not registered: {problem}{emergency}", fix)


def _signal(mc: TrunkModemConfig, modem: dict[str, Any]) -> Check:
    name = mc.name
    if mc.family == "v253":
        return Check("signal", Verdict.SKIP, f"{name}: analog line, no radio")
    signal = modem.get("signal") or {}
    if not signal or modem.get("state") in BEFORE_NETWORK:
        return Check("signal", Verdict.SKIP, f"{name}: not read yet (read while registering)")
    bars, dbm = int(signal.get("bars") or 0), signal.get("dbm")
    if bars == 0:
        return Check("signal", Verdict.FAIL, f"{name}: no signal", ANTENNA_FIX)
    detail = f"{name}: {dbm} dBm ({bars} bar(s) of 5)"
    if bars <= WEAK_BARS:
        return Check("signal", Verdict.WARN, f"{detail}: weak, calls may break up", ANTENNA_FIX)
    return Check("signal", Verdict.PASS, detail)


def _voice(mc: TrunkModemConfig, modem: dict[str, Any]) -> Check:
    name, state = mc.name, modem.get("state")
    problem = str(modem.get("problem") or "")
    if NO_VOLTE in problem:
        return Check("voice", Verdict.FAIL, f"{name}: on LTE without VoLTE: calls cannot be placed", VOLTE_FIX)
    if state == "ready":
        how = "the analog line" if mc.family == "v253" else str(modem.get("access") or "2G/3G")
        return Check("voice", Verdict.PASS, f"{name}: calls can be placed ({how})")
    return Check("voice", Verdict.SKIP, f"{name}: not registered yet")
