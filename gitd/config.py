"""Configuration: the shipped defaults, then DATA/gitd.toml, then GITD_* environment.

The documented default file (config/gitd.toml in the source tree, installed as
``gitd._config``) is the single source of default values. Settings are read with
typed accessors (``cfg.get_int("git.max_processes")``) so a typo fails loudly.
"""

from __future__ import annotations

import copy
import json
import os
import re
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

ENV_PREFIX = "GITD_"

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?i?b?)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "kib": 1024, "ki": 1024,
    "m": 1000**2, "mb": 1000**2, "mib": 1024**2, "mi": 1024**2,
    "g": 1000**3, "gb": 1000**3, "gib": 1024**3, "gi": 1024**3,
    "t": 1000**4, "tb": 1000**4, "tib": 1024**4, "ti": 1024**4,
}


class ConfigError(ValueError):
    """A setting is missing, misspelled or has a value of the wrong type."""


def default_config_text() -> str:
    return resources.files("gitd._config").joinpath("gitd.toml").read_text(encoding="utf-8")


def parse_size(value: int | float | str) -> int:
    """Turn 1024, "10MiB" or "5GB" into a number of bytes."""
    if isinstance(value, bool):
        raise ConfigError(f"not a size: {value!r}")
    if isinstance(value, int | float):
        return int(value)
    m = _SIZE_RE.match(str(value))
    if not m or (m.group(2) or "").lower() not in _SIZE_UNITS:
        raise ConfigError(f"not a size: {value!r}")
    return int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "").lower()])


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def _coerce(raw: str, like: Any, name: str) -> Any:
    if isinstance(like, bool):
        low = raw.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name}: expected a boolean, got {raw!r}")
    if isinstance(like, int):
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{name}: expected an integer, got {raw!r}")
    if isinstance(like, float):
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{name}: expected a number, got {raw!r}")
    if isinstance(like, list):
        text = raw.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{name}: bad JSON list: {exc}")
            if not isinstance(value, list):
                raise ConfigError(f"{name}: expected a list")
            return value
        return [part.strip() for part in text.split(",") if part.strip()]
    return raw


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX) or "__" not in key:
            continue
        path = [p.lower() for p in key[len(ENV_PREFIX):].split("__")]
        if not all(path):
            continue
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"{key}: {part} is not a section")
            node = child
        leaf = path[-1]
        if isinstance(node.get(leaf), dict):
            raise ConfigError(f"{key}: {leaf} is a section, not a setting")
        node[leaf] = _coerce(raw, node.get(leaf, ""), ".".join(path))


class Config:
    """Merged settings with typed, dotted-path accessors."""

    def __init__(self, data: dict[str, Any]):
        self._data = data

    @classmethod
    def load(cls, path: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
        data = tomllib.loads(default_config_text())
        if path is not None and path.exists():
            try:
                _merge(data, tomllib.loads(path.read_text(encoding="utf-8")))
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{path}: {exc}")
        _apply_env(data, os.environ if environ is None else environ)
        return cls(data)

    def raw(self, dotted: str) -> Any:
        node: Any = self._data
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"unknown setting {dotted!r}")
            node = node[part]
        return node

    def section(self, dotted: str) -> dict[str, Any]:
        try:
            value = self.raw(dotted)
        except ConfigError:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"{dotted} is a setting, not a section")
        return copy.deepcopy(value)

    def set(self, dotted: str, value: Any) -> None:
        parts = dotted.split(".")
        node = self._data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value

    def get_str(self, dotted: str) -> str:
        value = self.raw(dotted)
        if not isinstance(value, str):
            raise ConfigError(f"{dotted}: expected a string, got {value!r}")
        return value

    def get_int(self, dotted: str) -> int:
        value = self.raw(dotted)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{dotted}: expected an integer, got {value!r}")
        return value

    def get_float(self, dotted: str) -> float:
        value = self.raw(dotted)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{dotted}: expected a number, got {value!r}")
        return float(value)

    def get_bool(self, dotted: str) -> bool:
        value = self.raw(dotted)
        if not isinstance(value, bool):
            raise ConfigError(f"{dotted}: expected true or false, got {value!r}")
        return value

    def get_list(self, dotted: str) -> list[Any]:
        value = self.raw(dotted)
        if not isinstance(value, list):
            raise ConfigError(f"{dotted}: expected a list, got {value!r}")
        return value

    def get_size(self, dotted: str) -> int:
        return parse_size(self.raw(dotted))

    def get_duration(self, dotted: str) -> float:
        """Seconds, from a number or a string such as "90s", "30m", "12h", "7d"."""
        value = self.raw(dotted)
        if isinstance(value, bool):
            raise ConfigError(f"{dotted}: expected a duration, got {value!r}")
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            raise ConfigError(f"{dotted}: {exc}") from None


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """'24h', '30m', '7d', '90s', '0' or a plain number of seconds."""
    value = text.strip().lower()
    try:
        if value and value[-1] in _DURATION_UNITS:
            seconds = float(value[:-1]) * _DURATION_UNITS[value[-1]]
        else:
            seconds = float(value)
    except ValueError:
        raise ValueError(f"not a duration: {text!r} (use e.g. 24h, 30m, 7d)") from None
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def split_hostport(value: str, default_port: int) -> tuple[str, int]:
    """Parse HOST:PORT, [v6]:PORT or a bare host; ConfigError for anything else."""
    text = value.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ConfigError(f"not a HOST:PORT address: {value!r}")
        port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
        host = host or "127.0.0.1"
    else:
        host, port = text, ""
    if not host:
        raise ConfigError(f"not a HOST:PORT address: {value!r}")
    if not port:
        return host, default_port
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"not a HOST:PORT address: {value!r} (the port must be a number from 0 to 65535)")
    return host, int(port)
