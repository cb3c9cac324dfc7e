"""Extensions from a CSV or JSON file, for installers with no directory API.

Every row is checked before anything is stored: a file with one bad row imports nothing. A CSV file
starts with a header row naming its columns (or, read with `header=False`, holds NO_HEADER_COLUMNS in
that order). Errors name the row and the column, never a cell's value: a misplaced column can put a
password anywhere.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.errors import ImportRowsError
from gateway.mirror.records import SHORT_PASSWORD, Extension, is_short_password

SIP_TOKEN = r"^[A-Za-z0-9._~!$&'()*+,;=%-]+$"
# The column order of a CSV without a header row: fixed, so that such a file keeps its meaning when
# columns are added (a new column needs a header).
NO_HEADER_COLUMNS = ("number", "password", "name", "auth_user", "realm", "groups", "emergency_cid")
REQUIRED_COLUMNS = ("number", "password")


class ExtensionRow(BaseModel):
    """One row as an installer writes it (with the clear password, hashed at once)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    number: str = Field(min_length=1, max_length=32, pattern=r"^\+?[0-9*#]+$")
    password: str = Field(min_length=1, max_length=128)  # any length the cloud allows; short ones warned about
    auth_user: str | None = Field(None, min_length=1, max_length=64, pattern=SIP_TOKEN)
    name: str = Field("", max_length=80)
    realm: str | None = Field(None, min_length=1, max_length=128, pattern=r"^[^\s\"]+$")
    groups: list[str] = Field(default_factory=list)
    emergency_cid: str = Field("", max_length=32, pattern=r"^(\+?[0-9]+)?$")
    location_address: str = Field("", max_length=200)  # the dispatchable location emergency notices show
    location_floor: str = Field("", max_length=32)
    location_room: str = Field("", max_length=64)


@dataclass(frozen=True)
class ParsedFile:
    """A checked file: its extensions (hashed), warnings that name rows, and the numbers with a short password."""

    extensions: list[Extension]
    warnings: list[str]
    short_passwords: frozenset[str]


class _Row(NamedTuple):
    where: str  # "line 3" or "entry 2"
    raw: Any
    labels: Mapping[str, str]  # field name -> how a message names its column, e.g. "column 2 (password)"
    problems: tuple[str, ...] = ()  # found before validation (cells outside the named columns)


def _column_problems(err: ValidationError, labels: Mapping[str, str]) -> list[str]:
    """Each bad column and what is wrong with it; never the value, which may be a password."""
    parts = []
    for e in err.errors():
        key = str(e["loc"][0]) if e["loc"] else ""
        column = labels.get(key, key) or "row"
        if e["type"] == "extra_forbidden":
            parts.append(f"{column}: unknown field")
        elif e["type"] == "missing":
            parts.append(f"{column}: missing")
        else:
            parts.append(f"{column}: {e['msg']}")  # pydantic's messages describe the rule, not the input
    return parts


def _header_columns(cells: list[str], line: int) -> list[str]:
    """The columns a header row names; ImportRowsError, naming columns by position only, if it is not one."""
    names = [cell.strip().lower() for cell in cells]
    known = list(ExtensionRow.model_fields)
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing and not any(name in known for name in names):
        raise ImportRowsError(
            [
                f"line {line}: no header row: the first row must name the columns (at least "
                f"{','.join(REQUIRED_COLUMNS)}; known: {','.join(known)}); or pass --no-header to read "
                f"the columns in the order {','.join(NO_HEADER_COLUMNS)}"
            ]
        )
    problems = [f"line {line}: the header has no {name} column" for name in missing]
    for index, name in enumerate(names, start=1):
        if name and name not in known:
            # A header that lacks number or password may be a data row after all: name no cell of it.
            shown = f" {name!r}" if not missing else ""
            problems.append(f"line {line}, column {index}: unknown column{shown} (known: {','.join(known)})")
        elif name and names.index(name) != index - 1:
            problems.append(f"line {line}, column {index}: {name} named twice (also column {names.index(name) + 1})")
    if problems:
        raise ImportRowsError(problems)
    return names


def _csv_row(where: str, cells: list[str], columns: list[str]) -> _Row:
    row: dict[str, Any] = {}
    labels: dict[str, str] = {}
    problems: list[str] = []
    for index, cell in enumerate(cells, start=1):
        name = columns[index - 1] if index <= len(columns) else ""
        value = cell.strip()
        if not name:
            if value:
                problems.append(f"column {index}: a cell outside the named columns")
            continue
        labels[name] = f"column {index} ({name})"
        if value or name in REQUIRED_COLUMNS:  # an empty optional cell means its default
            row[name] = value
    if "groups" in row:
        row["groups"] = [g.strip() for g in row["groups"].split(";") if g.strip()]
    return _Row(where, row, labels, tuple(problems))


def _cells(reader: Any) -> Iterable[list[str]]:
    """The reader's rows; text the csv module cannot read (an oversized cell) is a bad file, not a crash."""
    try:
        yield from reader
    except csv.Error as err:
        raise ImportRowsError([f"line {reader.line_num + 1}: not readable as CSV: {err}"]) from err


def _csv_rows(text: str, header: bool) -> Iterable[_Row]:
    # newline="": the csv module sees the line ends itself (a file from an old Mac ends lines with CR only).
    reader = csv.reader(io.StringIO(text, newline=""))
    columns = None if header else list(NO_HEADER_COLUMNS)
    first, end = True, 0
    for cells in _cells(reader):
        line, end = end + 1, reader.line_num  # a quoted cell may span lines: name the row's first
        if not any(cell.strip() for cell in cells):
            continue  # blank lines, and the empty rows a spreadsheet leaves, hold nothing
        if columns is None:
            columns = _header_columns(cells, line)
            continue
        if not header and first and set(REQUIRED_COLUMNS) <= {cell.strip().lower() for cell in cells}:
            raise ImportRowsError([f"line {line}: a header row (naming number and password): drop --no-header"])
        first = False
        yield _csv_row(f"line {line}", cells, columns)


def _json_rows(text: str) -> Iterable[_Row]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ImportRowsError([f"line {err.lineno}: not valid JSON: {err.msg}"]) from err
    if isinstance(data, Mapping) and "extensions" in data:
        data = data["extensions"]
    if not isinstance(data, list):
        raise ImportRowsError(['top level: expected a list of extensions (or {"extensions": [...]})'])
    for index, row in enumerate(data, start=1):
        yield _Row(f"entry {index}", row, {})


def parse_extensions(text: str, fmt: str, default_realm: str, *, header: bool = True) -> ParsedFile:
    """Parse and hash a whole file; raise ImportRowsError naming every bad row (and column)."""
    rows = _csv_rows(text, header) if fmt == "csv" else _json_rows(text)
    problems: list[str] = []
    warnings: list[str] = []
    short: set[str] = set()
    result: list[Extension] = []
    numbers: dict[str, str] = {}
    users: dict[str, str] = {}
    for where, raw, labels, early in rows:
        if not isinstance(raw, Mapping):
            problems.append(f"{where}: expected an object with number and password")
            continue
        found = list(early)
        try:
            row = ExtensionRow.model_validate(raw)
        except ValidationError as err:
            problems.append(f"{where}: " + "; ".join(found + _column_problems(err, labels)))
            continue
        auth_user = row.auth_user or row.number
        if row.number in numbers:
            found.append(f"{labels.get('number', 'number')}: already used at {numbers[row.number]}")
        elif auth_user in users:
            column = labels.get("auth_user", labels.get("number", "number"))
            found.append(f"{column}: auth_user already used at {users[auth_user]}")
        numbers.setdefault(row.number, where)
        users.setdefault(auth_user, where)
        if found:
            problems.append(f"{where}: " + "; ".join(found))
        if is_short_password(row.password):
            short.add(row.number)
            warnings.append(
                f"{where}: password shorter than {SHORT_PASSWORD} characters (kept: the cloud PBX sets the policy)"
            )
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
                location_address=row.location_address,
                location_floor=row.location_floor,
                location_room=row.location_room,
            )
        )
    if problems:
        raise ImportRowsError(problems)
    if not result:
        raise ImportRowsError(["the file holds no extensions"])
    return ParsedFile(result, warnings, frozenset(short))


def read_extensions_file(path: Path, default_realm: str, *, header: bool = True) -> ParsedFile:
    """Read a .csv or .json file of extensions (`header=False`: a CSV in NO_HEADER_COLUMNS order)."""
    fmt = "json" if path.suffix.lower() == ".json" else "csv"
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise ImportRowsError([f"{path}: cannot read: {err}"]) from err
    return parse_extensions(text, fmt, default_realm, header=header)
