"""Typed config loading: nested dicts (from YAML) into frozen dataclasses, checked field by field.

Every config section is a small dataclass owned by the module that uses it (`MinHashConfig` lives next
to MinHash). This module turns plain dicts into those dataclasses and rejects, with the dotted key,
anything that does not fit: unknown keys, wrong types, values outside a `Literal`. Range checks that
need more than a type live in each dataclass's `validate(prefix)`.
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from corpuslab.errors import ConfigError

T = TypeVar("T")


def from_dict(cls: type[T], data: Any, prefix: str) -> T:
    """Build dataclass `cls` from `data`, naming `prefix.key` in every error."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(prefix, data, f"a mapping with keys {sorted(_field_names(cls))}")
    hints = get_type_hints(cls)
    known = _field_names(cls)
    # A dataclass may collect the keys it does not know into one mapping field (an arm's inline recipe
    # parameters); the plug-in that owns them validates them.
    extra_field = getattr(cls, "EXTRA_FIELD", None)
    extra = {k: v for k, v in data.items() if k not in known} if extra_field else {}
    for key in data:
        if key not in known and not extra_field:
            raise ConfigError(_join(prefix, str(key)), data[key], f"one of the known keys {sorted(known)}")
    if extra:
        data = {**{k: v for k, v in data.items() if k in known}, extra_field: {**data.get(extra_field, {}), **extra}}
    kwargs = {key: coerce(hints[key], value, _join(prefix, key)) for key, value in data.items()}
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate(prefix)
    return obj


def to_dict(obj: Any) -> Any:
    """The inverse of `from_dict`: plain dicts and lists, ready for YAML or JSON."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def coerce(tp: Any, value: Any, key: str) -> Any:
    """Check `value` against type `tp`, converting only where it is lossless (int -> float, list -> tuple)."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None:
            if type(None) in options:
                return None
            raise ConfigError(key, value, _describe(tp))
        for option in options:
            if option is type(None):
                continue
            try:
                return coerce(option, value, key)
            except ConfigError as err:
                if err.key != key:  # the value had the right shape but a nested key was wrong: say which
                    raise
                continue
        raise ConfigError(key, value, _describe(tp))
    if origin is Literal:
        if any(value == allowed and type(value) is type(allowed) for allowed in get_args(tp)):
            return value
        raise ConfigError(key, value, "one of " + ", ".join(repr(a) for a in get_args(tp)))
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(key, value, _describe(tp))
        (item_tp, *_) = get_args(tp) or (Any,)
        items = [coerce(item_tp, v, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(key, value, "a mapping")
        _, val_tp = get_args(tp) or (Any, Any)
        return {k: coerce(val_tp, v, _join(key, str(k))) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return from_dict(tp, value, key)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(key, value, "true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        number = _number(value)  # 1e5 and 1_000_000.0 are integers too when they are integral
        if number is not None and number.is_integer():
            return int(number)
        raise ConfigError(key, value, "an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        number = _number(value)
        if number is not None:
            return number
        raise ConfigError(key, value, "a number")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(key, value, "a string")
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(key, value, _describe(tp))


def _number(value: Any) -> float | None:
    """A float from a float or from text YAML left unparsed (YAML 1.1 reads `1e5` as a string)."""
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        try:
            number = float(value.replace("_", ""))
        except ValueError:
            return None
        return number if number == number and abs(number) != float("inf") else None
    return None


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        parts = [_describe(a) for a in get_args(tp)]
        return " or ".join(parts)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (list, tuple):
        (item_tp, *_) = get_args(tp) or (Any,)
        return f"a list of {_describe(item_tp)}"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return f"a mapping with keys {sorted(_field_names(tp))}"
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def require(condition: bool, key: str, value: object, expected: str) -> None:
    """Raise a ConfigError for `key` unless `condition` holds; the one-liner every validate() uses."""
    if not condition:
        raise ConfigError(key, value, expected)



def require_int(value: object, key: str, minimum: int, optional: bool = False) -> None:
    """An integer (not a bool) >= `minimum`, or None when `optional`."""
    if value is None and optional:
        return
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    require(ok, key, value, f"an integer >= {minimum}" + (" or null" if optional else ""))
