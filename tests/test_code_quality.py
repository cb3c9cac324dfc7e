"""The project's own checks run with the tests, so CI proves them too."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_check_is_clean() -> None:
    done = run(str(BIN / "ruff"), "check", "gateway", "tests", "bench")
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_format_is_clean() -> None:
    done = run(str(BIN / "ruff"), "format", "--check", "gateway", "tests", "bench")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_is_clean() -> None:
    done = run(str(BIN / "mypy"))
    assert done.returncode == 0, done.stdout + done.stderr


BENCH_SCRIPTS = sorted(
    path.name
    for path in (ROOT / "bench").iterdir()
    if path.is_file() and path.suffix == "" and path.read_bytes().startswith(b"#!")
)


@pytest.mark.parametrize("script", BENCH_SCRIPTS)
def test_every_benchmark_script_type_checks(script: str) -> None:
    # The scripts have no .py (mypy's package list skips them): a rename in gateway/ would otherwise
    # surface only at the next bench run (bench/trunk_audio kept calling a removed `call_listeners`).
    done = run(str(BIN / "mypy"), "--follow-imports=silent", f"bench/{script}")
    assert done.returncode == 0, done.stdout + done.stderr


MAX_LINES = 400  # issue #13: a module a reader can hold in their head
# The modem simulator stands in for hardware, not for the product: exempt by the issue.
EXEMPT = {"gateway/trunk/sim/modem.py"}
# Over the limit today, each waiting for its split. A module leaves this list the day it fits: the
# second test fails while the list names one that is gone or no longer over, so it cannot go stale.
OVER_LIMIT_FOR_NOW: set[str] = set()


def _line_counts() -> dict[str, int]:
    return {
        path.relative_to(ROOT).as_posix(): len(path.read_text().splitlines())
        for path in sorted((ROOT / "gateway").rglob("*.py"))
    }


def test_no_module_of_gateway_is_over_400_lines() -> None:
    over = {
        name: lines
        for name, lines in _line_counts().items()
        if lines > MAX_LINES and name not in EXEMPT | OVER_LIMIT_FOR_NOW
    }
    listed = ", ".join(f"{name} ({lines} lines)" for name, lines in over.items())
    assert not over, f"over {MAX_LINES} lines: {listed}"


def test_the_size_allow_lists_name_only_modules_still_over_400_lines() -> None:
    counts = _line_counts()
    stale = {name: counts.get(name) for name in sorted(EXEMPT | OVER_LIMIT_FOR_NOW) if counts.get(name, 0) <= MAX_LINES}
    listed = ", ".join(f"{name} ({'gone' if lines is None else f'{lines} lines'})" for name, lines in stale.items())
    assert not stale, f"allowed over {MAX_LINES} lines but no longer over: {listed}; take them off the list"


# Issue #13: each capability owns its tables, and SQL lives only with the owner (a repository module of
# its own, or the package that owns the table): everyone else calls a function. Paths ending in / are packages.
SQL_OWNERS = {
    "gateway/store.py": "the connection, the migration runner, the journal (events, state), whole-database copies",
    "gateway/schema.py": "the schema's history (the journal's first tables)",
    "gateway/mirror/": "extensions, ring_groups (mirror/repository.py for other capabilities)",
    "gateway/cdr/": "cdrs, cdr_outbox, cdr_settings (cdr/repository.py for other capabilities)",
    "gateway/core/alert_schema.py": "alerts",
    "gateway/sip/views.py": "the views Kamailio reads",
    "gateway/sip/accounting.py": "Kamailio's acc database",
    "gateway/sip/location.py": "Kamailio's location table",
    "gateway/web/tokens.py": "api_tokens",
    "gateway/web/token_schema.py": "api_tokens' schema steps",
    "gateway/lab/cloud.py": "the simulated cloud's own database, not Lifeline's",
    # keepalived runs it outside the venv (standard library only): no table, BEGIN IMMEDIATE then ROLLBACK.
    "gateway/ha/check.py": "the pair's health check: whether the store takes a write lock",
}
SQL = re.compile(
    r"\bSELECT\s+[\w*(]|\bINSERT\s+(OR\s+\w+\s+)?INTO\b|\bUPDATE\s+\S+\s+SET\b|\bDELETE\s+FROM\b"
    r"|\b(CREATE|DROP|ALTER)\s+(TABLE|VIEW|INDEX|UNIQUE INDEX|TRIGGER)\b|\bPRAGMA\s+\w|\bBEGIN\s+IMMEDIATE\b"
)
SQL_CALLS = {"execute", "executemany", "executescript"}  # sqlite3's: SQL passed in from elsewhere runs here


def _sql_in(source: str) -> list[str]:
    """What in a module looks like SQL: string literals (f-strings with their holes filled) and sqlite3 calls."""
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    in_fstrings = {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values}
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(p.value if isinstance(p, ast.Constant) else "x" for p in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) in docstrings or id(node) in in_fstrings:
                continue
            text = node.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SQL_CALLS:
            found.append((node.lineno, f".{node.func.attr}(…)"))
            continue
        else:
            continue
        if SQL.search(text):
            found.append((node.lineno, repr(" ".join(text.split())[:60])))
    return [f"line {line}: {what}" for line, what in sorted(found)]


def _hits_outside(owned: Callable[[str], bool], hits_in: Callable[[str], list[str]]) -> dict[str, list[str]]:
    """hits_in(source) of each gateway/ module whose path owned() refuses, for the modules with any."""
    found = {}
    for path in sorted((ROOT / "gateway").rglob("*.py")):
        name = path.relative_to(ROOT).as_posix()
        if owned(name):
            continue
        if hits := hits_in(path.read_text()):
            found[name] = hits
    return found


def _listed(found: dict[str, list[str]]) -> str:
    """Each module with its hits, on one line."""
    return "; ".join(f"{name}: {', '.join(hits)}" for name, hits in found.items())


def _sql_outside_owners() -> dict[str, list[str]]:
    return _hits_outside(
        lambda name: any(name == owner or (owner.endswith("/") and name.startswith(owner)) for owner in SQL_OWNERS),
        _sql_in,
    )


def test_sql_is_written_only_by_the_capability_owning_the_table() -> None:
    outside = _sql_outside_owners()
    assert not outside, f"SQL outside its owner (call a repository function of the owner instead): {_listed(outside)}"


def test_the_sql_check_sees_sql_in_plain_and_formatted_strings_and_sqlite_calls() -> None:
    module = (
        'def f(conn, column, sql):\n    """SELECT nothing: a docstring."""\n'
        '    conn.execute(f"SELECT auth_user, {column} FROM extensions WHERE number = ?")\n'
        '    rows = "UPDATE cdrs SET mode = ?"\n    run(method="DELETE", path="/api/v1/tokens")\n'
        "    conn.executemany(sql, [])\n"
    )
    assert [hit.split(":")[0] for hit in _sql_in(module)] == ["line 3", "line 3", "line 4", "line 6"]


# Kamailio's RPC commands ("ul.dump", "htable.get", …): only gateway/sip/ knows them. The lab runs
# Kamailios of its own (the cloud, the pair), and keepalived's check cannot import the package (it
# runs under the system interpreter, gateway/ha/check.py), so it asks core.version itself.
KAMAILIO_RPC = re.compile(
    r"^(core|ul|htable|cfg|pv|dispatcher|tm|stats|corex|dmq|dlg|tls|pike|jsonrpc)\.[a-z][A-Za-z_]*(\.[a-z][A-Za-z_]*)?$"
)
FILE_NAME = re.compile(r"\.(py|cfg|key|crt|pem|sock|list|json|toml|tmpl|log)$")
KAMAILIO_OWNERS = ("gateway/sip/", "gateway/lab/", "gateway/ha/check.py")


def _rpc_names_in(source: str) -> list[str]:
    """The string literals in a module that name a Kamailio RPC command."""
    return [
        f"line {node.lineno}: {node.value!r}"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and KAMAILIO_RPC.match(node.value)
        and not FILE_NAME.search(node.value)
    ]


def _rpc_names_outside_owners() -> dict[str, list[str]]:
    return _hits_outside(lambda name: name.startswith(KAMAILIO_OWNERS), _rpc_names_in)


def test_only_gateway_sip_names_kamailios_rpc_commands() -> None:
    outside = _rpc_names_outside_owners()
    assert not outside, f"Kamailio RPC outside gateway/sip/ (add a method to its facade instead): {_listed(outside)}"
