"""Reading the TOML file and turning pydantic's errors into ones naming the key, the value and what is allowed."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, SecretStr, ValidationError

from gateway.config.model import Config
from gateway.errors import ConfigError

DEFAULT_PATHS = (Path("/etc/lifeline/lifeline.toml"),)


SECRET_SHOWN = "**********"  # what pydantic's SecretStr shows in place of a secret
URL_PASSWORD = re.compile(r"(://[^/@\s:]*:)[^/@\s]*@")


def _describe(error: dict[str, Any], model: type[BaseModel]) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        section = _model_at(model, error["loc"][:-1])[0]
        allowed = sorted(section.model_fields) if section is not None else []
        return f"{key}: unknown key (allowed here: {', '.join(allowed)})"
    if error["type"] == "missing":
        return f"{key}: {error['msg']}"  # its input is the table around the key, not a value of it
    section, secret = _model_at(model, error["loc"])
    if secret:
        # A token written unquoted, or as a list, must not end up in a terminal, a log or an errors file.
        return f"{key} (a secret: its value is not shown): {error['msg']}"
    return f"{key} = {_hide_secrets(error.get('input'), section)!r}: {error['msg']}"


def _submodel(annotation: Any) -> type[BaseModel] | None:
    """The model inside an annotation such as X, X | None or tuple[X, ...], if there is one."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for m in map(_submodel, get_args(annotation)) if m is not None), None)


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or any(map(_is_secret, get_args(annotation)))


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[type[BaseModel] | None, bool]:
    """The model of the table at loc (None: not a table of the config), and whether loc is a secret field."""
    current: type[BaseModel] | None = model
    secret = False
    for part in loc:
        if isinstance(part, int):
            continue  # an item of a list of tables (trunk.modems) has the list's model
        field = current.model_fields.get(part) if current is not None else None
        if field is None:
            return None, secret
        current, secret = _submodel(field.annotation), _is_secret(field.annotation)
    return current, secret


def _hide_secrets(value: Any, model: type[BaseModel] | None) -> Any:
    """value (a whole table, when the table is refused) with its secret fields shown as SecretStr shows them."""
    if isinstance(value, str):
        return URL_PASSWORD.sub(rf"\1{SECRET_SHOWN}@", value)  # https://user:password@host, refused as a URL
    if isinstance(value, list):
        return [_hide_secrets(item, model) for item in value]
    if not isinstance(value, dict):
        return value
    shown = {}
    for name, item in value.items():
        inner, secret = _model_at(model, (name,)) if model is not None else (None, False)
        shown[name] = SECRET_SHOWN if secret else _hide_secrets(item, inner)
    return shown


def parse(data: dict[str, Any], source: str = "config") -> Config:
    """Validate a parsed TOML document; ConfigError lists every bad key."""
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        lines = [_describe(dict(e), Config) for e in err.errors()]
        raise ConfigError(f"{source}: invalid configuration:\n  " + "\n  ".join(lines)) from err


def load(path: Path | None) -> tuple[Config, Path | None]:
    """Load the config file, the system one, or the embedded defaults; returns the file used."""
    candidates = [path] if path is not None else [p for p in DEFAULT_PATHS if p.exists()]
    if not candidates:
        return Config(), None
    chosen = candidates[0]
    try:
        data = tomllib.loads(chosen.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ConfigError(f"{chosen}: no such config file") from err
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{chosen}: cannot read: {err}") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{chosen}: not valid TOML: {err}") from err
    return parse(data, str(chosen)), chosen
