"""Config field specs, strict coercion and error sources: the leaf every config section uses.

A section is a frozen dataclass whose fields come from ``field`` (a default, an optional range
check, a doc line); ``from_dict`` builds it strictly: unknown keys, wrong types and out-of-range
values raise ``ConfigError`` naming the dotted key and where it came from (the file, or the
command-line override that set it). A section may define ``problems(self)``, yielding
``(key, message)`` pairs for checks across its fields (``key`` may be a tuple of the keys
involved: the error names the one an override set). Imports nothing from rlx.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Iterable
from typing import Any


class ConfigError(ValueError):
    """A bad config value; the message names the key and its source."""


def field(default, check=None, doc: str = "", wide: bool = False):
    """A dataclass field with an optional range check ``(predicate, 'must be ...')``.

    Integer fields must fit in int32 (the compiled program holds them so) unless ``wide``
    (then only their own check bounds them: seeds, step budgets).
    """
    metadata = {"check": check, "doc": doc, "wide": wide}
    if isinstance(default, dict | list):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def section(cls: type):
    """A dataclass field holding the section ``cls`` at its defaults."""
    return dataclasses.field(default_factory=cls)


POSITIVE = (lambda v: v > 0, "must be > 0")
# A PRNG seed: what jax.random.key takes (an unsigned 32-bit integer).
SEED = (lambda v: 0 <= v <= 2**32 - 1, "must be in [0, 2^32 - 1]")
# Layer sizes: every entry a positive width.
SIZES = (lambda v: all(x >= 1 for x in v), "every layer size must be >= 1")
# Integers the compiled program holds as int32 (sizes, counts); wider ones say so (``wide``).
INT32_MAX = 2**31 - 1
NON_NEGATIVE = (lambda v: v >= 0, "must be >= 0")
UNIT = (lambda v: 0 <= v <= 1, "must be in [0, 1]")
OPEN_UNIT = (lambda v: 0 < v < 1, "must be in (0, 1)")


def one_of(options: Iterable[str]):
    options = tuple(options)
    return (lambda v: v in options, f"must be one of {'|'.join(options)}")


class Source:
    """Says where a key came from: an override if one set it, else the file."""

    def __init__(self, file: str, overridden: dict[str, str] | None = None):
        self.file, self.overridden = file, dict(overridden or {})

    def error(self, key: str | tuple[str, ...], message: str) -> ConfigError:
        """The error for ``key``; a check across several keys passes them all (a tuple), and
        the one an override set is named (else the first, in the file)."""
        keys = (key,) if isinstance(key, str) else tuple(key)
        for name in keys:
            for prefix, text in self.overridden.items():
                related = (
                    name == prefix or name.startswith(prefix + ".") or prefix.startswith(name + ".")
                )
                if related:
                    return ConfigError(f"override '{text}': key '{name}': {message}")
        return ConfigError(f"{self.file}: key '{keys[0]}': {message}")


def _coerce_int(value: Any, key: str, source: Source) -> int:
    # YAML reads 5e5 as a string and 1e6 as a float; accept whole numbers written so.
    if isinstance(value, str | float) and not isinstance(value, bool):
        try:
            as_float = float(value)
        except ValueError:
            as_float = math.nan
        if as_float.is_integer():
            return int(as_float)
    if isinstance(value, bool) or not isinstance(value, int):
        raise source.error(key, f"expected an integer, got {value!r}")
    return value


def _coerce_float(value: Any, key: str, source: Source) -> float:
    if isinstance(value, bool):
        raise source.error(key, f"expected a number, got {value!r}")
    try:
        result = float(value)  # PyYAML reads 3e-4 as a string.
    except (TypeError, ValueError):
        raise source.error(key, f"expected a number, got {value!r}") from None
    if not math.isfinite(result):
        raise source.error(key, f"expected a finite number, got {value!r}")
    return result


def coerce(value: Any, kind: Any, key: str, source: Source) -> Any:
    """``value`` as type ``kind`` (bool, int, float, str, tuple[X, ...], dict, a section)."""
    origin = typing.get_origin(kind)
    if kind is bool:
        if not isinstance(value, bool):
            raise source.error(key, f"expected true or false, got {value!r}")
        return value
    if kind is int:
        return _coerce_int(value, key, source)
    if kind is float:
        return _coerce_float(value, key, source)
    if kind is str:
        if not isinstance(value, str):
            raise source.error(key, f"expected a string, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise source.error(key, f"expected a list, got {value!r}")
        inner = typing.get_args(kind)[0]
        return tuple(coerce(v, inner, f"{key}[{i}]", source) for i, v in enumerate(value))
    if kind is dict or origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise source.error(key, f"expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(kind):
        return from_dict(kind, value, source, key)
    raise TypeError(f"unsupported config type {kind} at {key}")


def from_dict(cls: type, data: Any, source: Source, prefix: str = "") -> Any:
    """Builds section ``cls`` from ``data``, strictly (see the module docstring)."""
    where = prefix or "top level"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise source.error(where, f"expected a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for name in data:
        if name not in fields:
            key = f"{prefix}.{name}" if prefix else str(name)
            raise source.error(key, f"unknown key (known: {', '.join(fields)})")
    values = {}
    for name, spec in fields.items():
        if name not in data:
            continue
        key = f"{prefix}.{name}" if prefix else name
        value = coerce(data[name], hints[name], key, source)
        check = spec.metadata.get("check")
        if check is not None and not check[0](value):
            raise source.error(key, f"{check[1]}, got {data[name]!r}")
        if not spec.metadata.get("wide") and not _fits_int32(value):
            raise source.error(key, f"must be at most {INT32_MAX:,} in size, got {data[name]!r}")
        values[name] = value
    result = cls(**values)
    for key, message in getattr(result, "problems", lambda: ())():
        keys = (key,) if isinstance(key, str) else key
        raise source.error(tuple(f"{prefix}.{k}" if prefix else k for k in keys), message)
    return result


def _fits_int32(value: Any) -> bool:
    """Whether every integer in ``value`` (an int, or a tuple of them) is within int32."""
    items = value if isinstance(value, tuple) else (value,)
    ints = [v for v in items if isinstance(v, int) and not isinstance(v, bool)]
    return all(-INT32_MAX - 1 <= v <= INT32_MAX for v in ints)


def plain(value: Any) -> Any:
    """A YAML-ready copy: sections become dicts, tuples lists."""
    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value
