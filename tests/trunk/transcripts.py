"""Load the captured-style modem transcripts in tests/data/modem/ (format in its README.md)."""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data" / "modem"


@dataclass(frozen=True)
class Step:
    kind: str  # "send", "read" or "expect"
    text: str
    raw: bytes = b""


def load(name: str) -> list[Step]:
    steps: list[Step] = []
    for number, line in enumerate((DATA / name).read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        tag, _, rest = line.partition(" ")
        if tag == ">":
            steps.append(Step("send", rest))
        elif tag == "<":
            raw = codecs.decode(rest, "unicode_escape").encode("latin-1")
            steps.append(Step("read", rest, raw))
        elif tag == "=":
            steps.append(Step("expect", rest))
        else:
            raise ValueError(f"{name}:{number}: unknown tag {tag!r}")
    return steps


def all_transcripts() -> list[str]:
    return sorted(p.name for p in DATA.glob("*.txt"))
