from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import ImportRowsError
from gateway.mirror.files import parse_extensions, read_extensions_file
from gateway.mirror.records import ha1_md5, ha1_sha256

DATA = Path(__file__).parent.parent / "data"


def test_bad_csv_rows_are_all_reported_by_line_without_passwords() -> None:
    with pytest.raises(ImportRowsError) as err:
        read_extensions_file(DATA / "extensions_bad.csv", "asterisk")
    problems = err.value.problems
    assert [p.split(":")[0] for p in problems] == ["line 3", "line 4", "line 5", "line 6"]
    assert "number" in problems[0]
    assert "password = ***" in problems[1]  # a bad password is never echoed
    assert "'1001' already used at line 2" in problems[2]
    assert "auth_user" in problems[3]
    assert "short" not in str(err.value)


def test_json_import_hashes_passwords_and_keeps_no_clear_text() -> None:
    extensions = read_extensions_file(DATA / "extensions_good.json", "asterisk")
    front, second = extensions
    assert front.realm == "asterisk" and front.auth_user == "2001" and front.groups == ("reception",)
    assert front.ha1 == ha1_md5("2001", "asterisk", "first-secret-2001")
    assert second.ha1_sha256 == ha1_sha256("u2002", "pbx.example.com", "second-secret-2002")
    assert second.emergency_cid == "+4930123456"
    assert "secret" not in repr(extensions)


def test_known_md5_digest() -> None:
    # RFC 2617 section 3.5 example: Mufasa / testrealm@host.com / Circle Of Life
    assert ha1_md5("Mufasa", "testrealm@host.com", "Circle Of Life") == "939e7578ed9e3c518a452acee763bce9"


@pytest.mark.parametrize(
    ("text", "fmt", "expected"),
    [
        ("[1, 2", "json", "not valid JSON"),
        ('{"users": []}', "json", "expected a list"),
        ("[]", "json", "holds no extensions"),
        ('["1001"]', "json", "entry 1: expected an object"),
        ("number,password\n", "csv", "holds no extensions"),
        ("number,password,colour\n1001,long-enough,red\n", "csv", "colour: unknown column"),
    ],
)
def test_malformed_files_are_refused(text: str, fmt: str, expected: str) -> None:
    with pytest.raises(ImportRowsError, match=expected):
        parse_extensions(text, fmt, "asterisk")
