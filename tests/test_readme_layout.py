"""The README's Layout map names every part of the package, and nothing that is not there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _layout_block() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    return block.splitlines()


def test_the_layout_lists_every_package_and_module_of_gateway() -> None:
    listed = {m.group(1) for line in _layout_block() if (m := re.match(r"  (\S+?/?)\s{2,}\S", line))}
    gateway = ROOT / "gateway"
    present = {p.name + "/" for p in gateway.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    present |= {p.name for p in gateway.glob("*.py") if p.name not in {"__init__.py", "__main__.py"}}
    assert sorted(present - listed) == [], "in gateway/ but not in the README's Layout"
    assert sorted(listed - present) == [], "in the README's Layout but not in gateway/"


def test_the_layout_lists_every_top_level_folder() -> None:
    listed = {m.group(1) for line in _layout_block() if (m := re.match(r"(\S+/)\s{2,}\S", line))}
    present = {p.name + "/" for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    present -= {"lifeline_gateway.egg-info/", "var/"}  # made by the install and by a first run, not kept
    assert sorted(present - listed) == []
    assert sorted(listed - present) == []
