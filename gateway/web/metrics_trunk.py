"""/metrics for the cellular trunk (agent, calls, modems) and the hardware that hands the analog line over."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.hw.patterns import FaultClass
from gateway.hw.relay import RelayState
from gateway.trunk.call import CallState
from gateway.trunk.link import LinkState
from gateway.trunk.supervisor import AgentState
from gateway.web.metrics_families import Families, dict_of, list_of, num

TRUNK_AGENT_STATES = tuple(state.value for state in AgentState)


def add_trunk(f: Families, trunk: dict[str, Any]) -> None:
    """The trunk agent, its calls and each modem: state, identity, signal, resets."""
    f.state_set(
        "lifeline_trunk_agent_state",
        "The trunk agent process's state.",
        "state",
        TRUNK_AGENT_STATES,
        trunk.get("state"),
    )
    f.counter("lifeline_trunk_agent_restarts", "Trunk agent restarts.", [((), trunk.get("restarts"))])
    if "registered" in trunk:
        f.value(
            "lifeline_trunk_sip_registered",
            "1 if the trunk agent's SIP account is registered with Kamailio.",
            trunk.get("registered") == 200,
        )
    minutes = num(trunk.get("minutes_today"))
    f.value(
        "lifeline_trunk_outgoing_call_seconds_today",
        "Outgoing trunk call time today (what the daily limit counts; emergency calls excluded).",
        None if minutes is None else minutes * 60,
    )
    calls = [dict_of(c) for c in list_of(trunk.get("calls"))] if "calls" in trunk else None
    if calls is not None:
        f.gauge(
            "lifeline_trunk_calls",
            "Calls on the trunk now, by direction.",
            [((d,), sum(1 for c in calls if c.get("direction") == d)) for d in ("in", "out")],
            ["direction"],
        )
        f.value(
            "lifeline_trunk_emergency_calls",
            "Emergency calls on the trunk now.",
            sum(1 for c in calls if c.get("emergency")),
        )
    modems = [dict_of(m) for m in list_of(trunk.get("modems"))]
    key = ["modem"]

    def each(*path: str) -> list[tuple[Sequence[str], Any]]:
        """(modem name, the field at path) for each modem."""
        rows: list[tuple[Sequence[str], Any]] = []
        for m in modems:
            value: Any = m
            for step in path:
                value = dict_of(value).get(step)
            rows.append(((str(m.get("name")),), value))
        return rows

    link_states = [s.value for s in LinkState]
    f.state_sets("lifeline_trunk_modem_state", "The modem link's state.", "state", link_states, each("state"), key)
    call_states = [s.value for s in CallState]
    f.state_sets("lifeline_trunk_modem_call_state", "The modem's call state.", "state", call_states, each("call"), key)
    info_keys = ("family", "model", "firmware", "operator", "access")
    f.gauge(
        "lifeline_trunk_modem_info",
        "The modem's identity and the network it is on.",
        [((str(m.get("name")), *(str(m.get(k) or "") for k in info_keys)), 1) for m in modems],
        [*key, *info_keys],
    )
    f.gauge(
        "lifeline_trunk_modem_last_change_timestamp_seconds",
        "When the modem's state last changed (Unix time).",
        each("since"),
        key,
    )
    f.gauge("lifeline_trunk_modem_signal_dbm", "Received signal strength.", each("signal", "dbm"), key)
    f.gauge("lifeline_trunk_modem_signal_bars", "Signal strength in bars (0-5).", each("signal", "bars"), key)
    f.gauge("lifeline_trunk_modem_registered", "1 if the modem is registered for voice.", each("registered"), key)
    f.gauge(
        "lifeline_trunk_modem_emergency_only",
        "1 if the modem has limited service (emergency calls only).",
        each("emergency_only"),
        key,
    )
    f.counter("lifeline_trunk_modem_resets", "Modem resets by the recovery ladder.", each("resets"), key)
    f.counter("lifeline_trunk_modem_stalls", "Times the modem stopped answering.", each("stalls"), key)
    f.counter(
        "lifeline_trunk_modem_realignments",
        "Times the PCM sample alignment was found again after lost audio bytes.",
        each("realignments"),
        key,
    )


def add_hardware(f: Families, hw: dict[str, Any]) -> None:
    """The front panel: who has the analog line, the faults shown, a button drill."""
    f.state_set(
        "lifeline_hardware_relay", "Who has the analog line.", "state", [r.value for r in RelayState], hw.get("relay")
    )
    faults = {str(x) for x in list_of(hw.get("faults"))}
    names = list(dict.fromkeys([*(c.name.lower() for c in FaultClass), *sorted(faults)]))
    f.gauge(
        "lifeline_hardware_fault",
        "1 for each fault the front panel shows.",
        [((n,), n in faults) for n in names],
        ["fault"],
    )
    f.value("lifeline_hardware_drill", "1 while a button drill runs.", hw.get("drill"))
