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
    imei_link = "lifeline/by-imei/usb-$env{LIFELINE_FAMILY}_$env{LIFELINE_IMEI}-if$env{ID_USB_INTERFACE_NUM}-port0"
    assert ("SYMLINK", None, imei_link) in assigned
    assert (
        "IMPORT",
        "program",
        "/opt/lifeline/venv/bin/python -m gateway.hw.modemid %k $env{LIFELINE_AT_IF}",
    ) in assigned
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


def test_rules_know_every_modem_the_trunk_drives_with_the_same_interfaces() -> None:
    from gateway.trunk.profiles import PROFILES

    rules = parse_rules(RULES.read_text())
    family_of: dict[tuple[int, int], str] = {}
    ports: dict[tuple[str, int], str] = {}
    for rule in rules:
        match = {(k, a): v for k, a, op, v in rule if op == "=="}
        assign = {(k, a): v for k, a, op, v in rule if op == "="}
        if ("ATTRS", "idVendor") in match and ("ENV", "LIFELINE_FAMILY") in assign:
            usb_id = (int(match[("ATTRS", "idVendor")], 16), int(match[("ATTRS", "idProduct")], 16))
            family_of[usb_id] = assign[("ENV", "LIFELINE_FAMILY")]
        if ("ENV", "ID_USB_INTERFACE_NUM") in match and ("ENV", "LIFELINE_PORT") in assign:
            key = (match[("ENV", "LIFELINE_FAMILY")], int(match[("ENV", "ID_USB_INTERFACE_NUM")]))
            ports[key] = assign[("ENV", "LIFELINE_PORT")]
    for profile in PROFILES.values():
        for usb_id in profile.usb_ids:
            assert family_of.get(usb_id) == profile.family.value, (profile.family, hex(usb_id[0]), hex(usb_id[1]))
        assert ports[(profile.family.value, profile.at_interface)] == "at"
        if profile.audio_interface is not None:
            assert ports[(profile.family.value, profile.audio_interface)] == "audio"


def test_by_imei_names_are_found_by_the_trunks_port_finder(tmp_path: Path) -> None:
    from gateway.trunk.ports import ByIdFinder
    from gateway.trunk.profiles import PROFILES, Family

    template = next(
        v for rule in parse_rules(RULES.read_text()) for k, _, _, v in rule if k == "SYMLINK" and "by-imei" in v
    )
    imei = "490154203237518"
    links = tmp_path / "lifeline"
    for interface, device in (("01", "ttyUSB1"), ("02", "ttyUSB2"), ("03", "ttyUSB3")):
        name = (
            template.replace("$env{LIFELINE_FAMILY}", "quectel")
            .replace("$env{LIFELINE_IMEI}", imei)
            .replace("$env{ID_USB_INTERFACE_NUM}", interface)
        )
        (tmp_path / device).touch()
        link = tmp_path / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(tmp_path / device)
    ports = ByIdFinder(PROFILES[Family.QUECTEL], match=imei, directory=links / "by-imei").find()
    assert ports is not None
    assert (ports.at, ports.audio) == (str(tmp_path / "ttyUSB2"), str(tmp_path / "ttyUSB1"))
