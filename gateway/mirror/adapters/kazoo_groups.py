"""Kazoo ring groups: callflows that ring a `ring_group`, resolved to the numbers of mirrored devices.

A Kazoo ring group is a callflow: its `numbers` are what callers dial, and a `ring_group` action in
its `flow` names `endpoints` that are devices, users (all the devices they own) or groups (a group
document whose `endpoints` object maps ids to {type: device|user|group}). SmartPBX (Monster UI) puts the
`ring_group` in a "baseGroup" callflow whose number is a random string, and the dialable numbers on a
"userGroup" callflow whose `callflow` action branches to it, possibly behind `prepend_cid` or
`record_call`; it finds the ring group by following the `_` child the same way.

Sources (2600hz/kazoo, master): applications/crossbar/doc/callflows.md and the `crossbar_listing` view
in core/kazoo_apps/priv/couchdb/account/callflows.json (the listing's `modules`, `numbers`);
applications/crossbar/priv/couchdb/schemas/callflows.ring_group.json and
applications/callflow/src/module/cf_ring_group.erl (endpoint types, `endpoint_type` defaulting to
device, users resolved to the devices they own, groups to their endpoints);
applications/crossbar/doc/groups.md (the listing counts `endpoints`; GET /groups/{id} has them);
applications/callflow/src/module/cf_callflow.erl (`callflow` branches to `data.id`); SmartPBX in
2600hz/monster-ui-voip submodules/groups/groups.js (`groupsCreationMergeData`, `groupsRenderRingback`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pydantic import BaseModel, ConfigDict, Field

from gateway.mirror.model import Group
from gateway.mirror.payload import validate

# Actions a call passes on its way to the ring group without ringing anyone or choosing a branch.
PASS_THROUGH = frozenset({"prepend_cid", "record_call"})
MAX_HOPS = 32  # callflows may branch to each other in a loop
WANTED_MODULES = frozenset({"ring_group", "callflow"})  # the only callflows that can reach a ring group


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CallflowSummary(_Model):
    """An item of the callflow listing."""

    id: str
    modules: list[str] | None = None  # the flow's actions, those with skip_module left out


class Callflow(_Model):
    """GET /v2/accounts/{id}/callflows/{callflow_id}."""

    id: str
    name: str | None = None
    numbers: list[str] | None = None
    flow: object = None  # validated node by node along the path a call takes, not branches it never reaches


class FlowNode(_Model):
    """One action of a flow: module, data, children keyed by branch ("_" is the default)."""

    module: str
    data: dict[str, object] = Field(default_factory=dict)
    children: dict[str, object] = Field(default_factory=dict)


class RingGroupEndpoint(_Model):
    """An item of a ring_group action's endpoints."""

    id: str = Field(min_length=1, max_length=128)
    endpoint_type: str = "device"  # cf_ring_group's default when it is absent


class RingGroupData(_Model):
    """The data of a ring_group action."""

    endpoints: list[RingGroupEndpoint]


class GroupEndpoint(_Model):
    """A value of a group's endpoints object."""

    type: str = "device"


class KazooGroup(_Model):
    """GET /v2/accounts/{id}/groups/{group_id}."""

    id: str
    name: str | None = None
    endpoints: dict[str, GroupEndpoint] = Field(default_factory=dict)


def wanted(summary: CallflowSummary) -> bool:
    """Whether a callflow may reach a ring group (and so must be fetched in full)."""
    return bool(WANTED_MODULES & set(summary.modules or ()))


def ring_group_of(
    start: Callflow, callflows: dict[str, Callflow], existing: set[str], where: Callable[[str], str]
) -> RingGroupData | None:
    """The ring group a call to start rings without a menu choice or a time rule; None when there is none."""
    raw, callflow, path = start.flow, start, "data.flow"
    for _ in range(MAX_HOPS):
        if raw is None:
            return None
        node = validate(FlowNode, raw, where(callflow.id), path)
        skipped = node.data.get("skip_module") is True
        target = node.data.get("id")
        if not skipped and node.module == "ring_group":
            return validate(RingGroupData, node.data, where(callflow.id), f"{path}.data")
        if not skipped and node.module == "callflow" and isinstance(target, str) and target in existing:
            if target not in callflows:
                return None  # not fetched: its flow has neither a ring group nor a branch to one
            callflow = callflows[target]
            raw, path = callflow.flow, "data.flow"
            continue
        # A skipped action, one that only passes the call on, or a branch to a callflow that does not exist
        # (Kazoo then continues with "_"): the default child is next. Any other action rings or decides itself.
        if skipped or node.module in PASS_THROUGH or node.module == "callflow":
            raw, path = node.children.get("_"), f"{path}.children._"
            continue
        return None
    return None


class Members:
    """Resolves ring-group endpoints to extension numbers, fetching the groups they name once each."""

    def __init__(
        self,
        device_numbers: dict[str, str],
        owners: dict[str, str],
        fetch_group: Callable[[str], Awaitable[KazooGroup | None]],
    ) -> None:
        self.device_numbers = device_numbers  # mirrored device id -> its extension number
        self.user_numbers: dict[str, list[str]] = {}
        for device_id, owner in owners.items():
            self.user_numbers.setdefault(owner, []).append(device_numbers[device_id])
        self.fetch_group = fetch_group
        self.groups: dict[str, KazooGroup | None] = {}

    async def resolve(self, endpoints: list[tuple[str, str]], seen: frozenset[str] = frozenset()) -> list[str]:
        """The numbers of (endpoint_type, id) endpoints, in their order, each once."""
        numbers: list[str] = []
        for kind, endpoint_id in endpoints:
            # Devices Lifeline does not mirror (disabled, IP-authenticated, deleted) cannot be rung locally,
            # and an endpoint type Kazoo may add later rings nobody here: both are left out, not refused.
            if kind == "device":
                found = [self.device_numbers[endpoint_id]] if endpoint_id in self.device_numbers else []
            elif kind == "user":
                found = self.user_numbers.get(endpoint_id, [])
            elif kind == "group" and endpoint_id not in seen:
                if endpoint_id not in self.groups:
                    self.groups[endpoint_id] = await self.fetch_group(endpoint_id)
                group = self.groups[endpoint_id]
                inner = [(e.type, i) for i, e in group.endpoints.items()] if group else []
                found = await self.resolve(inner, seen | {endpoint_id})
            else:
                found = []
            numbers += [n for n in dict.fromkeys(found) if n not in numbers]
        return numbers


async def ring_groups(
    summaries: list[CallflowSummary],
    callflows: dict[str, Callflow],
    members: Members,
    dialable: Callable[[str], bool],
    where: Callable[[str], str],
) -> tuple[Group, ...]:
    """A group for each dialable number of a callflow that rings a ring group."""
    existing = {s.id for s in summaries}
    extensions = set(members.device_numbers.values())
    groups = []
    for callflow in callflows.values():
        # A ring group on an extension's own number (a user's phones rung together) is left to the extension,
        # which Lifeline reaches directly: a group of the same number would refuse the whole directory.
        numbers = [n for n in callflow.numbers or () if dialable(n) and n not in extensions]
        data = ring_group_of(callflow, callflows, existing, where) if numbers else None
        if data is None:
            continue  # SmartPBX's base group, say: its only number is a random string nobody dials
        found = await members.resolve([(e.endpoint_type, e.id) for e in data.endpoints])
        groups += [Group(number, callflow.name or "", tuple(found), callflow.id) for number in numbers]
    return tuple(groups)
