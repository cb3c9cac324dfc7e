"""Field helpers shared by the parsers: payloads, comma-separated fields, numbers, quoting."""

from __future__ import annotations


def payload_of(line: str, prefix: str) -> str:
    """What follows "PREFIX:" in line; ValueError for a line of another kind."""
    if not line.startswith(prefix + ":"):
        raise ValueError(f"expected a {prefix} line, got {line!r}")
    return line[len(prefix) + 1 :].strip()


def split_fields(payload: str) -> list[str]:
    """Split comma-separated AT fields, keeping commas inside quotes; quotes are removed."""
    fields: list[str] = []
    current: list[str] = []
    quoted = False
    for char in payload:
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            fields.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    if quoted:
        raise ValueError(f"unbalanced quotes in {payload!r}")
    fields.append("".join(current).strip())
    return fields


def as_int(value: str, what: str, line: str) -> int:
    """value as an int; ValueError naming what and the line otherwise."""
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{what} is not a number in {line!r}") from None


def quote(value: str) -> str:
    """Quote a string argument for an AT command; refuse characters that would break the line."""
    if any(c in value for c in '"\r\n\x1a\x1b'):
        raise ValueError(f"AT string argument may not contain quotes or control characters: {value!r}")
    return f'"{value}"'
