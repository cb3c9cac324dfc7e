"""`lifeline doctor`: checks an installation, each check pass/warn/fail with a one-line fix."""

from gateway.doctor.gather import gather, paths_only
from gateway.doctor.model import Check, Facts, Verdict
from gateway.doctor.report import as_json, confirm, exit_code, run_checks, summary, text_lines

__all__ = [
    "Check",
    "Facts",
    "Verdict",
    "as_json",
    "confirm",
    "exit_code",
    "gather",
    "paths_only",
    "run_checks",
    "summary",
    "text_lines",
]
