"""Typed plugin settings: a frozen dataclass whose fields are the keys of ``[plugins.NAME]``.

    TEN_MIB = Size.parse("10MiB")

    @dataclass(frozen=True)
    class Settings:
        max_blob_size: Size = TEN_MIB
        protect_default_branch: bool = True
        patterns: list[str] = field(default_factory=list)

    settings = context.settings(Settings)

Values are converted by the field's type (``bool``, ``int``, ``float``, ``str``, ``Size``,
``Duration``, ``list[str]``, ``list[int]``, an optional ``X | None``), whether they come
from gitd.toml or, as strings, from ``GITD_PLUGINS__NAME__KEY`` variables. An unknown
key, a missing required key or a bad value raises ``SettingsError`` naming the key
(``plugins.NAME.KEY``); a plugin whose settings do not parse is not loaded, and gitd
then refuses pushes until it is fixed (see docs/plugins.md).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from gitd.config import ConfigError, parse_size

T = TypeVar("T")

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_UNITS = {"": 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class SettingsError(ConfigError):
    """A plugin setting is missing, unknown or malformed; the message names the key."""


class Size(int):
    """A number of bytes, written as ``1048576``, ``"10MiB"`` or ``"5GB"``."""

    @classmethod
    def parse(cls, value: object) -> Size:
        if isinstance(value, bool):
            raise ValueError("expected a size such as 10MiB")
        if isinstance(value, int):
            if value < 0:
                raise ValueError("a size cannot be negative")
            return cls(value)
        if isinstance(value, str):
            try:
                return cls(parse_size(value))
            except (ConfigError, ValueError):
                pass
        raise ValueError(f"expected a size such as 10MiB, got {value!r}")


class Duration(float):
    """Seconds, written as ``90``, ``"90s"``, ``"15m"``, ``"2h"``, ``"7d"`` or ``"250ms"``."""

    @classmethod
    def parse(cls, value: object) -> Duration:
        if isinstance(value, bool):
            raise ValueError("expected a duration such as 15m")
        if isinstance(value, int | float):
            seconds = float(value)
        elif isinstance(value, str):
            text = value.strip().lower()
            number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
            unit = text[len(number):]
            if unit not in _UNITS or not number:
                raise ValueError(f"expected a duration such as 90s, 15m, 2h or 7d, got {value!r}")
            try:
                seconds = float(number) * _UNITS[unit]
            except ValueError:
                raise ValueError(f"expected a duration such as 90s, 15m, 2h or 7d, got {value!r}") from None
        else:
            raise ValueError(f"expected a duration such as 15m, got {value!r}")
        if seconds < 0:
            raise ValueError("a duration cannot be negative")
        return cls(seconds)


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"expected true or false, got {value!r}")


def _int(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ValueError(f"expected an integer, got {value!r}")


def _float(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise ValueError(f"expected a number, got {value!r}")


def _str(value: object) -> str:
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a string, got {value!r}")


def _list(value: object) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, str):  # from the environment: a JSON array or comma-separated
        text = value.strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except ValueError:
                raise ValueError(f"expected a list, got {value!r}") from None
            if isinstance(parsed, list):
                return parsed
        return [part.strip() for part in text.split(",") if part.strip()]
    raise ValueError(f"expected a list, got {value!r}")


_SCALARS: dict[Any, Any] = {bool: _bool, int: _int, float: _float, str: _str, Size: Size.parse,
                            Duration: Duration.parse}


def convert(kind: Any, value: object) -> Any:
    """``value`` as the type ``kind`` (ValueError with a message for the user otherwise)."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        empty = value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null"))
        if empty and len(options) < len(typing.get_args(kind)):
            return None
        errors = []
        for option in options:
            try:
                return convert(option, value)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError("; ".join(errors))
    if origin in (list, tuple):
        (item,) = typing.get_args(kind)[:1] or (str,)
        items = [convert(item, v) for v in _list(value)]
        return items if origin is list else tuple(items)
    if kind in _SCALARS:
        return _SCALARS[kind](value)
    raise TypeError(f"unsupported setting type {kind!r}")


def parse_settings(cls: type[T], table: Mapping[str, Any], *, where: str) -> T:
    """Build the settings dataclass ``cls`` from a settings table; ``where`` names the table
    in messages (``plugins.NAME``)."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise SettingsError(f"{where}.{unknown[0]}: unknown setting (known: {', '.join(sorted(fields)) or 'none'})")
    values: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in table:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise SettingsError(f"{where}.{name}: required setting is missing")
            continue
        try:
            values[name] = convert(hints[name], table[name])
        except ValueError as exc:
            raise SettingsError(f"{where}.{name}: {exc}") from None
    return cls(**values)
