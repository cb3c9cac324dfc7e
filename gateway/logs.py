"""Structured logging with structlog: JSON when not on a terminal, readable lines when on one; numbers masked."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# Fields that hold a phone number (or a list of them, or a mapping keyed by them): always masked.
NUMBER_KEYS = frozenset({"number", "numbers", "caller", "callee", "sender", "dialled", "from_number", "to_number"})
# Anywhere else, a run of six or more digits standing on its own (a SIP URI's user, ATD+49…;, an error
# message) is taken for a number: extensions and short codes are shorter, ids and times are not alone.
_LOOSE_NUMBER = re.compile(r"(?<![\w.])\+?\d{6,}(?![\w.])")


def mask_number(number: str | None) -> str:
    """A number as logs may show it: the last two digits only (no personal data in logs)."""
    if not number:
        return ""
    return "*" * max(len(number) - 2, 1) + number[-2:] if len(number) > 2 else "*" * len(number)


def mask_text(text: str) -> str:
    """Text with every number of six or more digits in it masked."""
    return _LOOSE_NUMBER.sub(lambda m: mask_number(m.group(0)), text)


def _mask_value(value: Any, known: bool) -> Any:
    if isinstance(value, str):
        return mask_number(value) if known else mask_text(value)
    if isinstance(value, dict):
        return {_mask_value(k, known): _mask_value(v, False) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_value(item, known) for item in value]
    return value


def mask_numbers(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: numbers in known fields masked whole, numbers in any other text masked where found."""
    for key, value in event.items():
        event[key] = _mask_value(value, key in NUMBER_KEYS)
    return event


def configure(level: str = "info", fmt: str = "auto") -> None:
    """Set up structlog once for the process (the daemon, the trunk agent and the CLI)."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            # Before the time stamp, whose digits are no number; after the traceback, whose text may hold one.
            mask_numbers,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        # One write per line (message and newline together): the daemon, its agent and Kamailio's relay
        # share one log file, and print()'s two writes let another process's line land in between.
        logger_factory=_current_stderr,
        cache_logger_on_first_use=False,
    )


def _current_stderr(*_args: object) -> structlog.WriteLogger:
    # Whatever sys.stderr is at the time of the line, not when configure() ran: a caller that swaps it
    # (a test capturing output, a daemon redirecting it) must never leave the log writing to a closed file.
    return structlog.WriteLogger(sys.stderr)
