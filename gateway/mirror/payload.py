"""Validation of vendor payloads with pydantic, turned into PayloadError messages that name the field.

Messages never echo a value: a payload may carry clear passwords.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from gateway.mirror.errors import PayloadError

M = TypeVar("M", bound=BaseModel)

MAX_PROBLEMS = 5


def path(loc: tuple[int | str, ...]) -> str:
    """`extensions[3].number` from pydantic's location tuple."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def describe(err: ValidationError, prefix: str = "") -> list[str]:
    """One line per problem: where, what, and the type that came instead (never the value)."""
    lines = []
    for e in err.errors():
        where = path((*((prefix,) if prefix else ()), *e["loc"]))
        if e["type"] == "missing":
            lines.append(f"{where}: missing")
        else:
            got = type(e.get("input")).__name__
            lines.append(f"{where}: {e['msg']} (got {got})")
    return lines


def validate(model: type[M], data: Any, where: str, prefix: str = "") -> M:
    """Validate data against model; PayloadError listing the first problems."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        lines = describe(err, prefix)
        more = f" (and {len(lines) - MAX_PROBLEMS} more)" if len(lines) > MAX_PROBLEMS else ""
        raise PayloadError(f"{where}: " + "; ".join(lines[:MAX_PROBLEMS]) + more) from err
