"""Plug-ins: one registry per kind of thing an experiment varies (recipe, procedure, sampler, metric).

A plug-in is a small class with a `name`, a `version` and a typed `Config` dataclass. It is registered
with its kind's registry and chosen in the config by name, with its parameters next to it:

    recipe: near                                   # the recipe's default parameters
    recipe: {name: near, minhash: {threshold: 0.9}}

The config is validated at load (an unknown name lists the known ones, an unknown parameter names
its key), and the plug-in's fingerprint is derived from what it is (name, version, config) and what it
reads (its inputs' fingerprints), never assembled by hand. Bump `version` when a change to the code
changes what the plug-in produces, so cached stages made by the old code are not reused.

Users register their own in a module named in the config (`plugins: [my_recipes.py]`):

    from corpuslab.curation.recipes import Recipe, recipes

    @recipes.register
    class ShortDocs(Recipe):
        name = "short_docs"
        ...
"""

from __future__ import annotations

import dataclasses
import inspect
from abc import ABC
from typing import Any, ClassVar, Generic, TypeVar

from corpuslab.artifacts import fingerprint
from corpuslab.errors import ConfigError
from corpuslab.schema import from_dict, to_dict


@dataclasses.dataclass(frozen=True)
class NoConfig:
    """For plug-ins without parameters."""


class Plugin(ABC):  # noqa: B024 - each kind's base (Recipe, Sampler, ...) declares its abstract methods
    """Base of every plug-in: a name, a version, a typed config; `fingerprint` covers all three."""

    name: ClassVar[str] = ""
    version: ClassVar[int] = 1
    Config: ClassVar[type] = NoConfig

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.Config()

    @classmethod
    def from_params(cls, params: dict[str, Any] | None, key: str) -> Plugin:
        """Build from config parameters, naming `key.<param>` in every error."""
        return cls(from_dict(cls.Config, params or {}, key))

    def fingerprint(self, *inputs: Any) -> str:
        return fingerprint(type(self).__name__, self.name, self.version, self.config, *inputs)

    def describe(self) -> dict[str, Any]:
        """What made this plug-in, as recorded in manifests and reports."""
        return {"name": self.name, "version": self.version, "config": to_dict(self.config)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"


P = TypeVar("P", bound=Plugin)


class Registry(Generic[P]):
    """Name -> plug-in class for one kind (`recipe`, `procedure`, `sampler`, `metric`)."""

    def __init__(self, kind: str, base: type[P]):
        self.kind, self.base = kind, base
        self._classes: dict[str, type[P]] = {}

    def register(self, cls: type[P]) -> type[P]:
        """Class decorator. Registering a second class under a taken name is an error, so a user's plug-in
        never silently replaces a built-in one."""
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise TypeError(f"a {self.kind} must subclass {self.base.__name__}, got {cls!r}")
        if not cls.name:
            raise TypeError(f"{cls.__name__}: a {self.kind} needs a non-empty `name`")
        if not dataclasses.is_dataclass(cls.Config):
            raise TypeError(f"{cls.__name__}.Config must be a dataclass")
        existing = self._classes.get(cls.name)
        if existing is not None and existing is not cls and existing.__qualname__ != cls.__qualname__:
            raise TypeError(f"{self.kind} '{cls.name}' is already registered by {existing.__module__}.{existing.__qualname__}")
        if inspect.isabstract(cls):
            # Caught at registration (import time), not at the first run that builds the plug-in.
            missing = ", ".join(sorted(cls.__abstractmethods__))
            raise TypeError(f"{cls.__name__}: a {self.kind} must implement {missing} ({self.base.__name__} declares them)")
        self._classes[cls.name] = cls
        return cls

    def names(self) -> list[str]:
        return sorted(self._classes)

    def get(self, name: str, key: str) -> type[P]:
        if name not in self._classes:
            raise ConfigError(key, name, f"one of the known {self.kind}s {self.names()} "
                              "(or register your own in a module listed under `plugins`)")
        return self._classes[name]

    def build(self, spec: str | dict[str, Any] | None, key: str, default: str | None = None,
              defaults: dict[str, Any] | None = None) -> P:
        """A plug-in from its config spec: a name, or a mapping with `name` and the plug-in's parameters.
        `defaults` are parameters shared by the experiment (e.g. `curation.minhash`) that the spec's own
        parameters override key by key."""
        name, params = split_spec(spec, key, default)
        cls = self.get(name, f"{key}.name" if isinstance(spec, dict) else key)
        known = {f.name for f in dataclasses.fields(cls.Config)}
        shared = {k: v for k, v in (defaults or {}).items() if k in known}
        return cls.from_params(_merge(shared, params), key)

    def __contains__(self, name: str) -> bool:
        return name in self._classes

    def __iter__(self):
        return iter(self._classes.values())


def split_spec(spec: str | dict[str, Any] | None, key: str, default: str | None = None) -> tuple[str, dict[str, Any]]:
    """`near` -> ("near", {}); `{name: near, minhash: {...}}` -> ("near", {"minhash": {...}})."""
    if spec is None and default is not None:
        return default, {}
    if isinstance(spec, str) and spec:
        return spec, {}
    if isinstance(spec, dict) and isinstance(spec.get("name", default), str):
        params = {k: v for k, v in spec.items() if k != "name"}
        return spec.get("name", default), params
    raise ConfigError(key, spec, "a plug-in name, or a mapping with `name` and its parameters")


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def config_fields(config: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Every leaf field of a (nested) config dataclass as (dotted path, value): what a fingerprint must cover."""
    out: list[tuple[str, Any]] = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        path = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            out += config_fields(value, path + ".")
        else:
            out.append((path, value))
    return out


