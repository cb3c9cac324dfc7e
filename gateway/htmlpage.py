"""Jinja2 for the HTML reports (drill, lab story): templates beside their code, escaped always."""

from __future__ import annotations

from pathlib import Path

import jinja2


def report_templates(folder: Path) -> jinja2.Environment:
    """The templates in folder; every value escaped (SIP reasons, names and log lines come from outside)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a value the template names but nobody gave is an error, not ""
        trim_blocks=True,
        lstrip_blocks=True,
    )
