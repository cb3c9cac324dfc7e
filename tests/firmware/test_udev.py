"""The udev rules, checked by a parser of udev(7)'s syntax.

Debian 12's systemd 252 has no `udevadm verify` (it came in a later release) and `udevadm test`
needs the rules installed in /etc and a real device, so the syntax is checked here: every rule is
comma-separated KEY[{attr}] OP "value" pairs with keys and operators udev knows, match keys only
with ==/!=, every GOTO has its LABEL, IMPORT has a known type.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "firmware/udev/90-lifeline.rules"

MATCH_ONLY = {"ACTION", "DEVPATH", "KERNEL", "KERNELS", "SUBSYSTEM", "SUBSYSTEMS", "DRIVER", "DRIVERS",
              "ATTRS", "TAGS", "CONST", "TEST", "PROGRAM", "RESULT"}  # fmt: skip
ASSIGN_ONLY = {"OWNER", "GROUP", "MODE", "SECLABEL", "RUN", "LABEL", "GOTO", "IMPORT", "OPTIONS"}
BOTH = {"NAME", "SYMLINK", "ATTR", "SYSCTL", "ENV", "TAG"}
WITH_ATTR = {"ATTR", "ATTRS", "SYSCTL", "ENV", "CONST", "TEST", "SECLABEL", "RUN", "IMPORT"}
IMPORT_TYPES = {"program", "builtin", "file", "db", "cmdline", "parent"}
PAIR = re.compile(
    r'\s*(?P<key>[A-Z]+)(?:\{(?P<attr>[^}]*)\})?\s*(?P<op>==|!=|\+=|-=|:=|=)\s*"(?P<value>(?:[^"\\]|\\.)*)"\s*'
)


def parse_rules(text: str) -> list[list[tuple[str, str | None, str, str]]]:
    """Rules as lists of (key, attr, op, value); ValueError names the line and the problem."""
    rules, labels, gotos = [], set(), []
    for number, line in enumerate(text.replace("\\\n", "").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        pairs, pos = [], 0
        while pos < len(line):
            match = PAIR.match(line, pos)
            if not match:
                raise ValueError(f"line {number}: cannot parse at column {pos + 1}: {line[pos:]!r}")
            pos = match.end()
            if pos < len(line):
                if line[pos] != ",":
                    raise ValueError(f"line {number}: expected ',' at column {pos + 1}")
                pos += 1
            key, attr, op, value = match.group("key", "attr", "op", "value")
            if key not in MATCH_ONLY | ASSIGN_ONLY | BOTH:
                raise ValueError(f"line {number}: unknown key {key}")
            if (attr is not None) != (key in WITH_ATTR) and key not in {"RUN", "IMPORT"}:
                raise ValueError(f"line {number}: {key} {'needs' if attr is None else 'takes no'} {{attribute}}")
            if key in MATCH_ONLY and op not in ("==", "!="):
                raise ValueError(f"line {number}: {key} can only be matched (==, !=), not assigned ({op})")
            if key in ASSIGN_ONLY and op in ("==", "!="):
                raise ValueError(f"line {number}: {key} can only be assigned, not matched ({op})")
            if key == "IMPORT" and attr not in IMPORT_TYPES:
                raise ValueError(f"line {number}: IMPORT{{{attr}}}: unknown type")
            if key == "LABEL":
                labels.add(value)
            if key == "GOTO":
                gotos.append((number, value))
            pairs.append((key, attr, op, value))
        rules.append(pairs)
    for number, label in gotos:
        if label not in labels:
            raise ValueError(f"line {number}: GOTO {label!r} has no LABEL")
    return rules


def test_rules_parse() -> None:
    rules = parse_rules(RULES.read_text())
    assert len(rules) > 10


def test_modem_ports_are_named_kept_from_modemmanager_and_given_to_dialout() -> None:
    rules = parse_rules(RULES.read_text())
    assigned = {(k, a, v) for rule in rules for k, a, op, v in rule if op in ("=", "+=", ":=")}
    assert ("ENV", "ID_MM_DEVICE_IGNORE", "1") in assigned
    assert ("GROUP", None, "dialout") in assigned
    assert ("SYMLINK", None, "lifeline/imei-$env{LIFELINE_IMEI}-at") in assigned
    assert ("IMPORT", "program", "/opt/lifeline/venv/bin/python -m gateway.hw.modemid $devnode") in assigned
    assert ("GROUP", None, "gpio") in assigned


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ('ATTRS{idVendor}=="2c7c" GROUP="dialout"', "expected ','"),
        ("ATTRS{idVendor}==2c7c", "cannot parse"),
        ('KERNEL="ttyUSB0"', "KERNEL can only be matched"),
        ('GROUP=="dialout"', "GROUP can only be assigned"),
        ('FOO=="x"', "unknown key FOO"),
        ('GOTO="nowhere"', "GOTO 'nowhere' has no LABEL"),
        ('IMPORT{prog}="x"', "IMPORT{prog}: unknown type"),
        ('ENV=="x"', "ENV needs {attribute}"),
    ],
)
def test_the_parser_rejects_what_udev_rejects(rule: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        parse_rules(rule)
