"""Several modems as one trunk: least busy first, failed ones skipped, emergencies take a busy one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import structlog

from gateway.trunk.link import LinkState

log = structlog.get_logger("trunk.pool")


class PoolMember(Protocol):
    """What the pool needs to know about a modem (the driver's Modem, or a test double)."""

    name: str

    @property
    def link(self) -> LinkState:
        """The modem's link state."""
        ...

    @property
    def busy(self) -> bool:
        """Whether it carries (or sets up) a call."""
        ...

    @property
    def emergency_call(self) -> bool:
        """Whether its current call is an emergency call."""
        ...

    @property
    def emergency_capable(self) -> bool:
        """Whether it can dial an emergency number now (READY, or limited service: the driver's rule)."""
        ...

    @property
    def seconds_today(self) -> float:
        """Call seconds carried today (spreads the load and the bills)."""
        ...


@dataclass(frozen=True)
class Choice:
    """The modem to use; `preempt` when its current (non-emergency) call must end first."""

    member: PoolMember
    preempt: bool = False


class NoModemError(Exception):
    """No modem can take the call; `status`/`reason` are the SIP answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


# Limited-service modems for an emergency call, best first: a SIM the network refuses still gives the
# call the SIM's identity, while many networks (DE, GB among them) refuse emergency calls without a SIM.
_LIMITED_RANK = {LinkState.REGISTERING: 0, LinkState.SIM: 1}


class ModemPool:
    """Picks a modem for each outgoing call."""

    def __init__(self, members: list[PoolMember]) -> None:
        self.members = members

    def pick(self, emergency: bool = False) -> Choice:
        """The least busy ready modem; NoModemError(486/503) when there is none.

        An emergency call takes, in order: an idle READY modem, a busy one whose call it preempts,
        then an idle modem in limited service (SIM refused before SIM missing or locked).
        """
        ready = [m for m in self.members if m.link is LinkState.READY]
        idle = sorted((m for m in ready if not m.busy), key=lambda m: (m.seconds_today, m.name))
        if idle:
            return Choice(idle[0])
        if emergency:
            # A registered modem's ordinary call makes way before a modem in limited service is
            # tried: full service reaches the PSAP with a number it can call back.
            victims = sorted((m for m in ready if not m.emergency_call), key=lambda m: m.name)
            if victims:
                log.warning("emergency call takes a busy modem", modem=victims[0].name)
                return Choice(victims[0], preempt=True)
            limited = sorted(
                (m for m in self.members if m.emergency_capable and not m.busy and m.link is not LinkState.READY),
                key=lambda m: (_LIMITED_RANK.get(m.link, 2), m.name),
            )
            if limited:
                log.warning("emergency call in limited service", modem=limited[0].name, link=limited[0].link.value)
                return Choice(limited[0])
        if ready:
            raise NoModemError(486, "All trunk lines busy")
        failed = ", ".join(f"{m.name}: {m.link.value}" for m in self.members) or "none configured"
        raise NoModemError(503, f"No trunk line available ({failed})")
