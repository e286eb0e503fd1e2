"""Layered configuration shared by the broker and the agent.

Layers, later wins:
  1. the defaults declared on the settings model;
  2. the file named by ``BROKKR_CONFIG_FILE`` (TOML or YAML, sections as tables);
  3. environment variables ``BROKKR__SECTION__KEY`` (nested: ``BROKKR__BROKER__TLS__CERT_FILE``).

Any setting ``key`` may instead be given as ``key_file``: the path of a file whose
content (without the trailing newline) is the value. Secrets (passwords, PAKs,
database URLs) therefore never need to sit in an environment variable or a
ConfigMap. Sections the model does not know are left alone (they belong to the
other service); an unknown key inside a known section is an error, since it is
almost always a typo.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, SecretStr, ValidationError

ENV_PREFIX = "BROKKR__"
FILE_VARIABLE = "BROKKR_CONFIG_FILE"
FILE_SUFFIX = "_file"

Settings = TypeVar("Settings", bound=BaseModel)


class ConfigError(ValueError):
    """A setting is invalid; the message names the key, the value and the fix."""


def env_name(path: tuple[str, ...]) -> str:
    """The variable that sets a nested key: ('database', 'url') -> BROKKR__DATABASE__URL."""
    return ENV_PREFIX + "__".join(part.upper() for part in path)


def load(
    model: type[Settings],
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build a validated settings object from defaults, the config file and the environment."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    config_file = environ.get(FILE_VARIABLE)
    if config_file:
        _merge(data, _read_config_file(Path(config_file)))
    _merge(data, _from_environment(environ))
    known = _known_sections(model)
    data = {section: value for section, value in data.items() if section in known}
    _resolve_files(model, data, ())
    _reject_unknown_keys(model, data, ())
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, model)) from None


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(
            f"{FILE_VARIABLE}={path}: cannot read the file ({exc.strerror}); "
            "point it at a readable TOML or YAML file or unset it"
        ) from None
    try:
        if path.suffix == ".toml":
            loaded: Any = tomllib.loads(text)
        else:
            loaded = yaml.safe_load(text) or {}
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{FILE_VARIABLE}={path}: not valid TOML/YAML: {exc}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"{FILE_VARIABLE}={path}: expected a mapping of sections "
            "(e.g. `[database]` / `database:`), got "
            f"{type(loaded).__name__}"
        )
    return _lower_keys(loaded)


def _lower_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k).lower(): _lower_keys(v) for k, v in value.items()}
    return value


def _from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if not all(parts):
            raise ConfigError(
                f"{name}: empty segment in the variable name; use BROKKR__SECTION__KEY"
            )
        cursor = nested
        for part in parts[:-1]:
            child = cursor.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{name}: {part} is a value, not a section")
            cursor = child
        cursor[parts[-1]] = value
    return nested


def _merge(base: dict[str, Any], overlay: Mapping[str, Any]) -> None:
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = dict(value) if isinstance(value, Mapping) else value


def _known_sections(model: type[BaseModel]) -> set[str]:
    return set(model.model_fields)


def _sub_model(model: type[BaseModel], key: str) -> type[BaseModel] | None:
    field = model.model_fields.get(key)
    annotation = field.annotation if field else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _resolve_files(model: type[BaseModel], data: dict[str, Any], path: tuple[str, ...]) -> None:
    """Replace `key_file` entries by the file's content when `key` is a setting."""
    for key in list(data):
        child = _sub_model(model, key)
        if child is not None and isinstance(data[key], dict):
            _resolve_files(child, data[key], (*path, key))
            continue
        if not key.endswith(FILE_SUFFIX) or key in model.model_fields:
            continue
        target = key[: -len(FILE_SUFFIX)]
        if target not in model.model_fields:
            continue
        file_path = Path(str(data.pop(key)))
        try:
            data[target] = file_path.read_text().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(
                f"{env_name((*path, key))}={file_path}: cannot read the file "
                f"({exc.strerror}); mount it or set {env_name((*path, target))} instead"
            ) from None


def _reject_unknown_keys(
    model: type[BaseModel], data: dict[str, Any], path: tuple[str, ...]
) -> None:
    for key, value in data.items():
        if key not in model.model_fields:
            choices = list(model.model_fields)
            close = difflib.get_close_matches(key, choices, n=1)
            hint = f"did you mean {env_name((*path, close[0]))}? " if close else ""
            raise ConfigError(
                f"{env_name((*path, key))}: unknown setting; {hint}"
                f"known keys here: {', '.join(env_name((*path, c)) for c in choices)}"
            )
        child = _sub_model(model, key)
        if child is not None and isinstance(value, dict):
            _reject_unknown_keys(child, value, (*path, key))


def _is_secret(model: type[BaseModel], loc: tuple[Any, ...]) -> bool:
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None:
            return False
        field = current.model_fields.get(str(part))
        if field is None:
            return False
        if field.annotation in (SecretStr, SecretStr | None):
            return True
        current = _sub_model(current, str(part))
    return False


def _describe(exc: ValidationError, model: type[BaseModel]) -> str:
    lines = []
    for error in exc.errors():
        loc = tuple(str(p) for p in error["loc"] if not isinstance(p, int))
        if error["type"] == "missing":
            # The input of a missing key is its parent section, which may hold secrets.
            lines.append(f"{env_name(loc)}=<not set>: {error['msg']}")
            continue
        shown = "<hidden>" if _is_secret(model, loc) else repr(error.get("input"))
        lines.append(f"{env_name(loc)}={shown}: {error['msg']}")
    return "invalid configuration:\n  " + "\n  ".join(lines)
