"""The builder of /metrics' families from the status document, and the helpers that read the document."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric


def num(value: Any) -> float | None:
    """A number from the JSON document (bools count as 0/1), None when absent or not a number."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None


def dict_of(value: Any) -> dict[str, Any]:
    """The value if it is an object, else an empty one."""
    return value if isinstance(value, dict) else {}


def list_of(value: Any) -> list[Any]:
    """The value if it is a list, else an empty one."""
    return value if isinstance(value, list) else []


class Families:
    """Collects metric families in order; a family without samples is left out."""

    def __init__(self) -> None:
        self.out: list[Metric] = []

    def gauge(
        self, name: str, doc: str, samples: Iterable[tuple[Sequence[str], Any]], labels: Sequence[str] = ()
    ) -> None:
        """A gauge with a sample per (label values, value) whose value is a number."""
        family = GaugeMetricFamily(name, doc, labels=list(labels))
        self._add(family, samples)

    def counter(
        self, name: str, doc: str, samples: Iterable[tuple[Sequence[str], Any]], labels: Sequence[str] = ()
    ) -> None:
        """A counter with a sample per (label values, value) whose value is a number."""
        family = CounterMetricFamily(name, doc, labels=list(labels))
        self._add(family, samples)

    def value(self, name: str, doc: str, value: Any) -> None:
        """A gauge without labels, if value is a number."""
        self.gauge(name, doc, [((), value)])

    def state_set(self, name: str, doc: str, label: str, states: Iterable[str], current: Any) -> None:
        """1 for the current state and 0 for the others (a current state not in the list is added)."""
        self.state_sets(name, doc, label, states, [((), current)])

    def state_sets(
        self,
        name: str,
        doc: str,
        label: str,
        states: Iterable[str],
        rows: Iterable[tuple[Sequence[str], Any]],
        keys: Sequence[str] = (),
    ) -> None:
        """A state set per row of (label values for keys, current state)."""
        known = list(states)
        samples: list[tuple[Sequence[str], Any]] = []
        for values, current in rows:
            if isinstance(current, str):
                samples.extend(((*values, s), s == current) for s in dict.fromkeys([*known, current]))
        self.gauge(name, doc, samples, [*keys, label])

    def _add(
        self, family: GaugeMetricFamily | CounterMetricFamily, samples: Iterable[tuple[Sequence[str], Any]]
    ) -> None:
        for labels, raw in samples:
            value = num(raw)
            if value is not None:
                family.add_metric(list(labels), value)
        if family.samples:
            self.out.append(family)
