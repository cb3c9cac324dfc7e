from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import ImportRowsError
from gateway.mirror.files import parse_extensions, read_extensions_file
from gateway.mirror.records import ha1_md5, ha1_sha256

DATA = Path(__file__).parent.parent / "data"


def test_bad_csv_rows_are_all_reported_by_row_and_column_without_values() -> None:
    with pytest.raises(ImportRowsError) as err:
        read_extensions_file(DATA / "extensions_bad.csv", "asterisk")
    problems = err.value.problems
    # Line 4's password ("short") is no error: the cloud decides its password policy.
    assert [p.split(":")[0] for p in problems] == ["line 3", "line 5", "line 6"]
    assert problems[0].startswith("line 3: column 1 (number): ")
    assert problems[1] == "line 5: column 1 (number): already used at line 2"
    assert problems[2].startswith("line 6: column 4 (auth_user): ")
    for value in ("10x2", "bad user", "short", "secret"):
        assert value not in str(err.value)


def test_json_import_hashes_passwords_and_keeps_no_clear_text() -> None:
    parsed = read_extensions_file(DATA / "extensions_good.json", "asterisk")
    assert parsed.warnings == [] and parsed.short_passwords == frozenset()
    extensions = parsed.extensions
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
        ("number,password,colour\n1001,long-enough,red\n", "csv", r"line 1, column 3: unknown column 'colour'"),
        ("number,password,number\n1001,long-enough,1002\n", "csv", r"line 1, column 3: number named twice"),
        ('[{"number": "1001", "password": "long-enough", "colour": "red"}]', "json", "entry 1: colour: unknown"),
    ],
)
def test_malformed_files_are_refused(text: str, fmt: str, expected: str) -> None:
    with pytest.raises(ImportRowsError, match=expected):
        parse_extensions(text, fmt, "asterisk")


SECRET = "Sup3rSecretPw"


def problems_of(text: str, header: bool = True) -> str:
    with pytest.raises(ImportRowsError) as err:
        parse_extensions(text, "csv", "asterisk", header=header)
    return str(err.value)


def test_a_csv_without_header_is_refused_without_echoing_its_first_row() -> None:
    message = problems_of(f"1001,{SECRET},Alice\n1002,{SECRET}2,Bob\n")
    [problem] = message.splitlines()[1:]
    assert problem.startswith("line 1: no header row: the first row must name the columns (at least number,password;")
    assert problem.endswith(
        "or pass --no-header to read the columns in the order number,password,name,auth_user,realm,groups,emergency_cid"
    )
    assert SECRET not in message and "1001" not in message and "Alice" not in message


def test_no_header_reads_the_documented_column_order() -> None:
    text = f"\n1001,{SECRET},Alice,u1001,pbx.example.com,sales;support,+4930123456\n1002,{SECRET}2\n"
    parsed = parse_extensions(text, "csv", "asterisk", header=False)
    alice, bob = parsed.extensions
    assert (alice.number, alice.display_name, alice.auth_user, alice.realm) == (
        "1001",
        "Alice",
        "u1001",
        "pbx.example.com",
    )
    assert alice.groups == ("sales", "support") and alice.emergency_cid == "+4930123456"
    assert alice.ha1 == ha1_md5("u1001", "pbx.example.com", SECRET)
    assert (bob.auth_user, bob.realm, bob.ha1) == ("1002", "asterisk", ha1_md5("1002", "asterisk", SECRET + "2"))
    assert parsed.warnings == []


def test_no_header_refuses_a_file_that_has_one() -> None:
    message = problems_of(f"number,password\n1001,{SECRET}\n", header=False)
    assert "line 1: a header row (naming number and password): drop --no-header" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Columns shifted by one: the password lands in the number column.
        (f"number,password\n{SECRET},1001\n", "line 2: column 1 (number): String should match pattern"),
        (f"number,password\n1001,{SECRET},{SECRET}\n", "line 2: column 3: a cell outside the named columns"),
        (f"number,password\n1001,{SECRET * 11}\n", "line 2: column 2 (password): String should have at most 128"),
        ("number,password\n1001,\n", "line 2: column 2 (password): String should have at least 1 character"),
        (f"number,pasword\n1001,{SECRET}\n", "line 1: the header has no password column"),
        (f"number,{SECRET}\n1001,{SECRET}\n", "line 1, column 2: unknown column (known: "),
        (
            f'number,password,name\n1001,"{SECRET}\nsecond line",x\n1001,{SECRET}\n',
            "line 4: column 1 (number): already",
        ),
    ],
)
def test_row_and_column_are_named_and_no_value_is_echoed(text: str, expected: str) -> None:
    message = problems_of(text)
    assert expected in message
    assert SECRET not in message and "1001" not in message


def test_short_passwords_are_kept_with_a_warning_naming_the_row() -> None:
    parsed = parse_extensions("number,password\n1001,Ab3!x9\n1002,long-enough\n1003,a\n", "csv", "asterisk")
    assert [e.number for e in parsed.extensions] == ["1001", "1002", "1003"]
    assert parsed.extensions[0].ha1 == ha1_md5("1001", "asterisk", "Ab3!x9")
    assert parsed.short_passwords == frozenset({"1001", "1003"})
    assert parsed.warnings == [
        f"line {n}: password shorter than 8 characters (kept: the cloud PBX sets the policy)" for n in (2, 4)
    ]
    assert "Ab3!x9" not in repr(parsed)
