"""Users' own plug-ins: a module named in the config's `plugins:` list is imported before the config is
validated, so the recipes, procedures, samplers and metrics it registers are known by name like the
built-in ones.

An entry is a Python file (`my_recipes.py`, resolved against the folder of the config file that names
it, else the working directory) or an importable module name (`mylab.recipes`).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path

from corpuslab.errors import ConfigError

_LOADED: dict[str, object] = {}


def load_plugin(entry: str, base_dir: Path | None = None, key: str = "plugins") -> object:
    """Import `entry` once per process (per resolved file) and return the module."""
    if entry.endswith(".py") or "/" in entry:
        path = _resolve(entry, base_dir, key)
        if str(path) not in _LOADED:
            _LOADED[str(path)] = _load_file(path, key)
        return _LOADED[str(path)]
    try:
        return importlib.import_module(entry)
    except ImportError as err:
        raise ConfigError(key, entry, f"an importable module ({err}); or give the path of a .py file") from None


def _resolve(entry: str, base_dir: Path | None, key: str) -> Path:
    candidates = [Path(entry)] if Path(entry).is_absolute() else [p / entry for p in (base_dir, Path.cwd()) if p]
    for path in candidates:
        if path.is_file():
            return path.resolve()
    raise ConfigError(key, entry, "a Python file that exists (looked in " + ", ".join(str(c) for c in candidates) + ")")


def _load_file(path: Path, key: str) -> object:
    # A stable module name per file, so pickling plug-in objects for worker processes finds the module again.
    name = f"corpuslab_plugin_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(key, str(path), "a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[name]
        raise ConfigError(key, str(path), f"a module that imports cleanly; importing it raised "
                          f"{type(err).__name__}: {err}") from err
    return module
