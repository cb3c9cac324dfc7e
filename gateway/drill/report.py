"""A drill's report: JSON for machines, HTML for the auditor (Jinja2 template beside this file), files 0600."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

from gateway.drill.model import DrillResult, Outcome
from gateway.fsmode import private_dir, write_private
from gateway.htmlpage import report_templates

REPORT_ID = re.compile(r"^[0-9]{8}T[0-9]{6}Z(?:-[0-9]{1,3})?$")
FORMATS = ("json", "html")
TEMPLATE = "report.html.tmpl"

_env = report_templates(Path(__file__).parent)


def when(ts: float | None) -> str:
    """A UNIX time as UTC with milliseconds, or a dash."""
    if ts is None:
        return "—"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def seconds(value: float | None) -> str:
    """A duration in seconds for people, or a dash."""
    return "—" if value is None else f"{value:.3f} s"


def render_json(result: DrillResult) -> str:
    """The JSON report."""
    return json.dumps(result.as_dict(), indent=2, sort_keys=False) + "\n"


def render_html(result: DrillResult) -> str:
    """The HTML report an auditor keeps."""
    template = _env.get_template(TEMPLATE)
    return template.render(r=result, when=when, seconds=seconds, Outcome=Outcome)


def report_paths(directory: Path, report_id: str) -> dict[str, Path]:
    """Where a drill's reports go: DIR/<id>.json and DIR/<id>.html."""
    if not REPORT_ID.match(report_id):
        raise ValueError(f"not a drill id: {report_id!r}")
    return {fmt: directory / f"{report_id}.{fmt}" for fmt in FORMATS}


def write_reports(directory: Path, result: DrillResult) -> dict[str, str]:
    """Write both reports (directory private, files 0600); returns their paths, also kept in result.reports."""
    private_dir(directory)
    paths = report_paths(directory, result.id)
    result.reports = {fmt: str(path) for fmt, path in paths.items()}
    write_private(paths["html"], render_html(result))
    write_private(paths["json"], render_json(result))
    return dict(result.reports)


def new_id(now: float, previous: str | None = None) -> str:
    """A drill id from the UTC time (a suffix when the previous drill started within the same second)."""
    base = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    if previous is None or not previous.startswith(base):
        return base
    _, _, count = previous.partition("-")
    return f"{base}-{int(count or 0) + 1}"
