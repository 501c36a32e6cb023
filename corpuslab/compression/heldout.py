"""Where a compression run's validation and test bytes come from (`data.held_out`, see `data.py`).

    source   the source's own validation and test splits, as the seed used Wiki40B's: a Hugging Face source
             reads splits `data.val_split` / `data.test_split` of the same dataset (same name, subset,
             revision, data_files, cache); a local source reads the files `data.val_paths` / `data.test_paths`
             with the same reading settings
    stream   the bytes after the training bytes of the one stream (any source)
    auto     source when the source has both splits, else stream

`resolve_held_out` decides before any byte is read; a Hugging Face dataset's split names come from
`datasets.get_dataset_split_names` (the dataset card or the data files, no download of the data).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from corpuslab.errors import ConfigError, InputError
from corpuslab.sources.base import Source

from .data import BytesConfig


@dataclass
class HeldOut:
    """The decision: `mode` source (with the two split sources) or stream, and why."""

    mode: str
    val: Source | None = None
    test: Source | None = None
    reason: str = ""

    def fingerprints(self) -> list[str] | None:
        """What the held-out bytes depend on besides the training source (for the bytes stage key)."""
        return None if self.mode == "stream" else [self.val.inputs_fingerprint(), self.test.inputs_fingerprint()]

    def describe(self, data: BytesConfig) -> dict[str, Any]:
        if self.mode == "stream":
            where = "after the training bytes in the same stream"
            return {"mode": "stream", "validation": f"{data.val_bytes:,} bytes {where}",
                    "test": f"{data.test_bytes:,} bytes after the validation bytes", "reason": self.reason}

        def amount(value: int | str) -> str:
            return "all bytes" if value == "all" else f"the first {value:,} bytes"

        return {"mode": "source", "validation": f"{amount(data.val_bytes)} of {self.val.description()}",
                "test": f"{amount(data.test_bytes)} of {self.test.description()}", "reason": self.reason}


def resolve_held_out(source: Source, data: BytesConfig, prefix: str = "data") -> HeldOut:
    """Decide `data.held_out` for `source`; an impossible `source` choice stops naming the key."""
    if data.held_out == "stream":
        return _stream(data, prefix, "data.held_out is 'stream'")
    if source.name == "hf":
        return _hf(source, data, prefix)
    if source.name == "local":
        return _local(source, data, prefix)
    if data.held_out == "source":
        raise ConfigError(f"{prefix}.held_out", "source", f"'stream' or 'auto': the {source.name} source is one stream "
                          "without validation and test splits of its own (a Hugging Face dataset with them, or a "
                          "local source with val_paths and test_paths, has them)")
    return _stream(data, prefix, f"the {source.name} source has no validation and test splits")


def _stream(data: BytesConfig, prefix: str, reason: str) -> HeldOut:
    for key in ("val_bytes", "test_bytes"):
        if getattr(data, key) == "all":
            raise ConfigError(f"{prefix}.{key}", "all", f"a byte count: validation and test are the bytes after the "
                              f"training bytes here ({reason})")
    return HeldOut("stream", reason=reason)


def _hf(source: Source, data: BytesConfig, prefix: str) -> HeldOut:
    cfg = source.config
    wanted = (data.val_split, data.test_split)
    if cfg.split in wanted:
        key = f"{prefix}.val_split" if cfg.split == data.val_split else f"{prefix}.test_split"
        raise ConfigError(key, cfg.split, f"a split other than the training split (dataset.hf.split {cfg.split!r})")
    try:
        names = hf_split_names(cfg)
    except InputError:
        if data.held_out == "source":
            names = None  # loading the split will say what is wrong
        else:
            raise
    if names is not None and not all(name in names for name in wanted):
        if data.held_out == "auto":
            return _stream(data, prefix, f"{cfg.describe()}: the dataset has splits {names}, not "
                           f"{data.val_split!r} and {data.test_split!r}")
        missing = next(name for name in wanted if name not in names)
        key = f"{prefix}.val_split" if missing == data.val_split else f"{prefix}.test_split"
        raise ConfigError(key, missing, f"one of the splits of {cfg.name} ({names}), or held_out 'stream'")

    def split(name: str) -> Source:
        return type(source)(dataclasses.replace(cfg, split=name), source.seed)

    return HeldOut("source", split(data.val_split), split(data.test_split),
                   reason=f"the dataset has splits {names}" if names is not None else "data.held_out is 'source'")


def hf_split_names(cfg: Any) -> list[str]:
    """The split names of a Hugging Face dataset (Hub, local folder or packaged builder with data_files)."""
    import datasets

    from corpuslab.hub import offline_unless_reachable
    from corpuslab.sources.hf import _hf_token, _is_local

    optional = {"data_files": cfg.data_files, "revision": cfg.revision, "cache_dir": cfg.cache_dir, "token": _hf_token()}
    kwargs = {key: value for key, value in optional.items() if value is not None}
    try:
        if _is_local(cfg.name):
            return list(datasets.get_dataset_split_names(cfg.name, cfg.subset, **kwargs))
        with offline_unless_reachable():
            return list(datasets.get_dataset_split_names(cfg.name, cfg.subset, **kwargs))
    except Exception as err:  # network, missing dataset, bad data_files: the library raises many types
        raise InputError(cfg.describe(), f"could not list the dataset's splits ({type(err).__name__}: {err}); "
                         "expected a dataset that can be read: check its name, subset and data_files, and that it is "
                         "reachable or in the local cache (prefetch it). With data.held_out 'stream' or 'source' the "
                         "splits are not listed") from err


def _local(source: Source, data: BytesConfig, prefix: str) -> HeldOut:
    if data.val_paths is None:
        if data.held_out == "source":
            raise ConfigError(f"{prefix}.val_paths", None, "the validation files (and test_paths the test files) when "
                              "held_out is 'source' with a local source")
        return _stream(data, prefix, "a local source without data.val_paths and data.test_paths")

    def split(paths: list[str]) -> Source:
        return type(source)(dataclasses.replace(source.config, paths=list(paths)), source.seed)

    return HeldOut("source", split(data.val_paths), split(data.test_paths),
                   reason="data.val_paths and data.test_paths are given")
