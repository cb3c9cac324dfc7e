"""The base of every table of the configuration: unknown keys refused, values frozen."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A table of the TOML file: an unknown key is an error, a loaded value never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
