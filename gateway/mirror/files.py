"""Extensions from a CSV or JSON file, for installers with no directory API.

Every row is checked before anything is stored: a file with one bad row imports nothing.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.errors import ImportRowsError
from gateway.mirror.records import Extension

SIP_TOKEN = r"^[A-Za-z0-9._~!$&'()*+,;=%-]+$"


class ExtensionRow(BaseModel):
    """One row as an installer writes it (with the clear password, hashed at once)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    number: str = Field(min_length=1, max_length=32, pattern=r"^\+?[0-9*#]+$")
    password: str = Field(min_length=8, max_length=128)
    auth_user: str | None = Field(None, min_length=1, max_length=64, pattern=SIP_TOKEN)
    name: str = Field("", max_length=80)
    realm: str | None = Field(None, min_length=1, max_length=128, pattern=r"^[^\s\"]+$")
    groups: list[str] = Field(default_factory=list)
    emergency_cid: str = Field("", max_length=32, pattern=r"^(\+?[0-9]+)?$")


def _row_problem(where: str, err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "row"
        if e["type"] == "extra_forbidden":
            parts.append(f"{key}: unknown column")
        elif e["type"] == "missing":
            parts.append(f"{key}: missing")
        else:
            # Never echo a password back, even a bad one.
            shown = "***" if key == "password" else repr(e.get("input"))
            parts.append(f"{key} = {shown}: {e['msg']}")
    return f"{where}: " + "; ".join(parts)


def _csv_rows(text: str) -> Iterable[tuple[str, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text))
    for record in reader:
        row: dict[str, Any] = {k.strip(): (v or "") for k, v in record.items() if k is not None}
        if None in record:
            row["(extra cells)"] = record[None]
        for key in ("auth_user", "realm"):
            if row.get(key) == "":
                row.pop(key)
        if "groups" in row:
            row["groups"] = [g.strip() for g in str(row["groups"]).split(";") if g.strip()]
        yield f"line {reader.line_num}", row


def _json_rows(text: str) -> Iterable[tuple[str, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ImportRowsError([f"line {err.lineno}: not valid JSON: {err.msg}"]) from err
    if isinstance(data, Mapping) and "extensions" in data:
        data = data["extensions"]
    if not isinstance(data, list):
        raise ImportRowsError(['top level: expected a list of extensions (or {"extensions": [...]})'])
    for index, row in enumerate(data, start=1):
        yield f"entry {index}", row


def parse_extensions(text: str, fmt: str, default_realm: str) -> list[Extension]:
    """Parse and hash a whole file; raise ImportRowsError naming every bad row."""
    rows = _csv_rows(text) if fmt == "csv" else _json_rows(text)
    problems: list[str] = []
    result: list[Extension] = []
    numbers: dict[str, str] = {}
    users: dict[str, str] = {}
    for where, raw in rows:
        if not isinstance(raw, Mapping):
            problems.append(f"{where}: expected an object with number and password")
            continue
        try:
            row = ExtensionRow.model_validate(raw)
        except ValidationError as err:
            problems.append(_row_problem(where, err))
            continue
        auth_user = row.auth_user or row.number
        if row.number in numbers:
            problems.append(f"{where}: number {row.number!r} already used at {numbers[row.number]}")
        elif auth_user in users:
            problems.append(f"{where}: auth_user {auth_user!r} already used at {users[auth_user]}")
        numbers.setdefault(row.number, where)
        users.setdefault(auth_user, where)
        result.append(
            Extension.from_password(
                number=row.number,
                auth_user=auth_user,
                realm=row.realm or default_realm,
                password=row.password,
                display_name=row.name,
                groups=tuple(row.groups),
                emergency_cid=row.emergency_cid,
                source="import",
            )
        )
    if problems:
        raise ImportRowsError(problems)
    if not result:
        raise ImportRowsError(["the file holds no extensions"])
    return result


def read_extensions_file(path: Path, default_realm: str) -> list[Extension]:
    """Read a .csv or .json file of extensions."""
    fmt = "json" if path.suffix.lower() == ".json" else "csv"
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise ImportRowsError([f"{path}: cannot read: {err}"]) from err
    return parse_extensions(text, fmt, default_realm)
