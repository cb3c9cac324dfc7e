"""Numbers in logs: the last two digits only, in every field and every process that logs through gateway.logs."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from gateway import logs
from gateway.logs import mask_number, mask_numbers


@pytest.mark.parametrize(
    ("number", "masked"),
    [("+4930123456", "*********56"), ("112", "*12"), ("17", "**"), ("", ""), (None, "")],
)
def test_mask_number(number: str | None, masked: str) -> None:
    assert mask_number(number) == masked


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [
        # Fields that hold numbers are masked whatever their length.
        ("number", "+49301234567", "**********67"),
        ("caller", "116117", "****17"),
        ("sender", "+4917012345678", "************78"),
        ("numbers", ["+4915112345678", "0301234567"], ["************78", "********67"]),
        ("number", None, None),
        # Elsewhere, a number in text is found and masked; what is no number stays.
        ("results", {"+4915199990000": "sent"}, {"************00": "sent"}),
        ("error", "command 'ATD+49301234567;' failed: NO CARRIER", "command 'ATD+*********67;' failed: NO CARRIER"),
        (
            "line",
            "INFO: trunk call from 1001 <sip:00442079460018@lab>",
            "INFO: trunk call from 1001 <sip:************18@lab>",
        ),
        ("to", "sip:1002@trunk.lifeline.test", "sip:1002@trunk.lifeline.test"),
        ("id", "msg_1a2b3c4d5e6f12345678abcd", "msg_1a2b3c4d5e6f12345678abcd"),
        ("at", "2025-11-25T10:00:00.123456Z", "2025-11-25T10:00:00.123456Z"),
        ("call", 4, 4),
        ("extension", "1001", "1001"),
    ],
)
def test_the_processor_masks_numbers_in_fields_and_text(field: str, value: Any, shown: Any) -> None:
    assert mask_numbers(None, "info", {"event": "x", field: value})[field] == shown


@pytest.fixture
def reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


@pytest.mark.usefixtures("reset_logging")
def test_configured_logging_masks_before_rendering(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("info", "json")  # writes to sys.stderr as it is now: capsys's
    log = structlog.get_logger("test")
    log.info("trunk call out", number="+4930123456", extension="1001")
    try:
        raise ValueError("dial +4930123456 failed")
    except ValueError:
        log.exception("dial failed")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0]["number"] == "*********56" and lines[0]["extension"] == "1001"
    assert "+4930123456" not in lines[1]["exception"] and "*********56" in lines[1]["exception"]
    assert lines[0]["timestamp"].endswith("Z") and "*" not in lines[0]["timestamp"]


LOG_LINES = (
    "import sys, structlog; from gateway import logs; logs.configure('info', 'json'); "
    "log = structlog.get_logger('t'); [log.info('line', n=n, who=sys.argv[1], pad='x' * 200) for n in range(400)]"
)


def test_processes_sharing_one_log_file_never_split_a_line(tmp_path: Path) -> None:
    # The daemon and its trunk agent write to the same file: each line must land whole.
    log = tmp_path / "shared.log"
    with log.open("ab") as out:
        procs = [
            subprocess.Popen([sys.executable, "-c", LOG_LINES, str(k)], stderr=out, stdout=subprocess.DEVNULL)
            for k in range(4)
        ]
        assert [p.wait(60) for p in procs] == [0, 0, 0, 0]
    lines = log.read_text().splitlines()
    assert len(lines) == 1600 and all(json.loads(line)["event"] == "line" for line in lines)
