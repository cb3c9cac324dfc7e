"""Errors of the directory mirror: every one names the source and says what was wrong."""

from __future__ import annotations

from gateway.errors import LifelineError


class MirrorError(LifelineError):
    """A directory sync failed; the last good mirror stays in force."""


class FetchError(MirrorError):
    """The directory could not be fetched (HTTP status, timeout, TLS, size cap)."""


class PayloadError(MirrorError, ValueError):
    """The directory answered, but with something Lifeline cannot use (bad JSON, types, fields)."""


class RefusedError(MirrorError):
    """The directory's answer is well formed but applying it would do harm (an empty directory, a new realm)."""
