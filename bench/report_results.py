"""bench/run_all's runs and what they add up to: each run's JSON summary or failure, the rounds combined."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SELF = "run_all"
TAIL_LINES = 15
MISSING: Any = object()  # a round without a value for a key (no JSON, or the key absent)


class Varies(tuple[Any, ...]):
    """Values that differ between rounds and are not all numbers: shown as they are."""


@dataclass(frozen=True)
class Run:
    """One run of one bench: what its subprocess left behind."""

    bench: str
    round: int
    stdout: str
    stderr: str = ""
    exit_code: int | None = None  # None: not known (a saved log without run_all.json)
    wall_s: float | None = None
    timed_out: bool = False


@dataclass(frozen=True)
class BenchResult:
    """A bench's rounds put together."""

    bench: str
    runs: tuple[Run, ...]
    summaries: tuple[dict[str, Any] | None, ...]
    problems: tuple[str | None, ...]  # per round: why it failed, None when it exited 0 with a JSON summary
    values: dict[str, dict[str, tuple[Any, ...]]]  # section → flattened key → value per round (MISSING)

    @property
    def met_rounds(self) -> int:
        """Rounds that exited 0 with a JSON summary saying met."""
        return sum(1 for s, p in zip(self.summaries, self.problems, strict=True) if p is None and s and s["met"])

    @property
    def met(self) -> bool:
        """Every round exited 0 with a JSON summary saying met."""
        return bool(self.runs) and self.met_rounds == len(self.runs)

    @property
    def failed_runs(self) -> int:
        """Rounds that exited non-zero, timed out or printed no JSON summary."""
        return sum(1 for p in self.problems if p is not None)

    def section(self, name: str) -> dict[str, Any]:
        """A section's values over the rounds: the median of numbers (see combine)."""
        return {key: combine(values) for key, values in self.values.get(name, {}).items()}


def is_number(value: Any) -> bool:
    """An int or a finite float, not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def last_json(output: str) -> tuple[dict[str, Any] | None, str | None]:
    """The JSON summary on an output's last non-empty line, or None and why there is none."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if not lines:
        return None, "no output on stdout"
    try:
        value = json.loads(lines[-1])
    except json.JSONDecodeError:
        return None, "no JSON summary: the last line is not JSON"
    if not (
        isinstance(value, dict)
        and isinstance(value.get("figures"), dict)
        and isinstance(value.get("met"), bool)
        and all(isinstance(value.get(key, {}), dict) for key in ("baseline", "goal"))
    ):
        return None, "no JSON summary: the last line's JSON has no figures and met"
    return value, None


def tail(run: Run, lines: int = TAIL_LINES) -> str:
    """The last lines of a run's output, stdout then stderr."""
    text = run.stdout.rstrip("\n") + ("\n" + run.stderr.rstrip("\n") if run.stderr.strip() else "")
    return "\n".join(text.strip("\n").splitlines()[-lines:])


def problem(run: Run, json_problem: str | None) -> str | None:
    """Why a run failed (timeout, exit code, no JSON summary), None when it did not."""
    reasons = []
    if run.timed_out:
        reasons.append("timed out")
    elif run.exit_code not in (0, None):
        reasons.append(f"exit {run.exit_code}")
    if json_problem:
        reasons.append(json_problem)
    return "; ".join(reasons) or None


def flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects as one level, their keys joined with '.'."""
    flat: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, Mapping):
            flat.update(flatten(item, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = item
    return flat


def combine(values: Sequence[Any]) -> Any:
    """Rounds' values as one: the median when all are numbers, the value when all agree, else Varies."""
    present = [v for v in values if v is not MISSING]
    if not present:
        return MISSING
    if all(is_number(v) for v in present):
        return statistics.median(present)
    if all(v == present[0] for v in present):
        return present[0]
    return Varies(present)


def aggregate(bench: str, runs: Iterable[Run]) -> BenchResult:
    """One bench's runs, in round order, with their summaries, failures and values side by side."""
    ordered = tuple(sorted(runs, key=lambda r: r.round))
    parsed = [last_json(r.stdout) for r in ordered]
    summaries = tuple(s for s, _ in parsed)
    problems = tuple(problem(r, p) for r, (_, p) in zip(ordered, parsed, strict=True))
    values: dict[str, dict[str, tuple[Any, ...]]] = {}
    for section in ("figures", "baseline", "goal"):
        flats = [flatten(s.get(section, {})) if s else {} for s in summaries]
        keys = dict.fromkeys(key for flat in flats for key in flat)
        values[section] = {key: tuple(flat.get(key, MISSING) for flat in flats) for key in keys}
    return BenchResult(bench, ordered, summaries, problems, values)


def aggregate_all(runs: Iterable[Run]) -> list[BenchResult]:
    """Runs grouped by bench, benches in name order."""
    by_bench: dict[str, list[Run]] = {}
    for run in runs:
        by_bench.setdefault(run.bench, []).append(run)
    return [aggregate(bench, by_bench[bench]) for bench in sorted(by_bench)]


def summary_json(results: Sequence[BenchResult], wall_s: float | None, wall_s_max: float | None) -> dict[str, Any]:
    """run_all's own JSON summary, shaped like every bench's."""
    met = sum(1 for r in results if r.met)
    wall_ok = wall_s is None or wall_s_max is None or wall_s <= wall_s_max
    return {
        "bench": SELF,
        "figures": {
            "benches": len(results),
            "met": met,
            "failed_runs": sum(r.failed_runs for r in results),
            "wall_s": None if wall_s is None else round(wall_s, 1),
        },
        "baseline": {},
        "goal": {"all_met": True, "wall_s_max": wall_s_max},
        "met": bool(results) and met == len(results) and wall_ok,
    }
