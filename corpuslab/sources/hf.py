"""Read documents from a Hugging Face dataset through `datasets.load_dataset`.

Works for Hub datasets (``name: allenai/c4``) and for the packaged builders on local or remote files
(``name: json`` / ``parquet`` / ``csv`` / ``text`` with ``data_files``), through the same call.

- Authentication: the token comes from ``HF_TOKEN`` (or ``HUGGING_FACE_HUB_TOKEN``) in the environment and
  goes only to `load_dataset`. It is never stored in a config, a document, the bad-input log or a log line.
- Remote code: off by default. ``trust_remote_code: true`` is passed on only when the installed
  `datasets` still accepts it, with a warning that the dataset's script will run here. `datasets` 4 and
  later dropped loading scripts; with those, the option is ignored with a warning saying so.
- Bad records (missing or non-string text, empty, too long) follow ``on_bad_input`` like local files. A
  text column that the dataset does not have at all raises under either policy (a misspelled field
  name, not bad data), and so does an error inside `datasets` while iterating: the library cannot
  resume after one, and a network failure halfway must not silently shrink the corpus.
- Ids are the ``id_field`` value when configured, else ``<name>[/<subset>]:<split>:<row>``.
- Identity (what keys the ingest stage besides the config): name, subset, split, the configured revision
  and the commit it resolves to (a branch like ``main`` moves; the commit does not), and for packaged
  builders or a local folder the identity of every local data file. Resolving asks the Hub, or the local
  cache under ``HF_HUB_OFFLINE=1``; when neither answers, the configured revision stands in, with a
  warning. Pin ``revision`` to a commit to skip the question.
"""

from __future__ import annotations

import functools
import glob
import inspect
import logging
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from corpuslab.documents import Document
from corpuslab.errors import ConfigError, InputError
from corpuslab.hub import hub_reachable, offline_unless_reachable
from corpuslab.sources.badinput import (
    DEFAULT_MAX_DOC_CHARS,
    BadInputLog,
    FieldSpec,
    RecordPlace,
    check_bool,
    check_name,
    check_names,
    check_record_fields,
    document_from_record,
)
from corpuslab.sources.base import Source, sources
from corpuslab.sources.identity import file_identity

logger = logging.getLogger(__name__)

TOKEN_ENV_VARS: tuple[str, ...] = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
_COMMIT = re.compile(r"[0-9a-f]{40}")
# The builders `datasets` ships for files in generic formats: their data is the local or remote data_files.
_PACKAGED_BUILDERS = frozenset({"json", "csv", "parquet", "text", "arrow", "pandas", "webdataset", "xml", "sql",
                                "imagefolder", "audiofolder", "videofolder", "pdffolder"})


@dataclass(frozen=True)
class HFConfig:
    """A split of a Hugging Face dataset and which of its columns make a Document."""

    name: str  # "allenai/c4", or a packaged builder ("json", "parquet", "csv", "text") with data_files
    subset: str | None = None  # the dataset config name ("en", "sample-10B")
    split: str = "train"
    text_field: str = "text"
    id_field: str | None = None
    category_field: str | None = None
    metadata_fields: list[str] = field(default_factory=list)  # columns copied into metadata
    streaming: bool = True  # stream rows instead of downloading the whole split first
    max_docs: int | None = None
    revision: str | None = None  # a commit, tag or branch; pin it for reproducible runs
    trust_remote_code: bool = False
    data_files: str | list[str] | dict[str, str | list[str]] | None = None
    cache_dir: str | None = None  # None: the datasets default (HF_DATASETS_CACHE)
    on_bad_input: str = "skip"  # skip | stop
    max_doc_chars: int = DEFAULT_MAX_DOC_CHARS

    def validate(self, prefix: str = "dataset.hf") -> None:
        check_name(f"{prefix}.name", self.name)
        check_name(f"{prefix}.subset", self.subset, optional=True)
        check_name(f"{prefix}.split", self.split)
        check_record_fields(prefix, self)
        check_bool(f"{prefix}.streaming", self.streaming)
        check_bool(f"{prefix}.trust_remote_code", self.trust_remote_code)
        check_name(f"{prefix}.revision", self.revision, optional=True)
        check_name(f"{prefix}.cache_dir", self.cache_dir, optional=True)
        _check_data_files(f"{prefix}.data_files", self.data_files)

    def field_spec(self) -> FieldSpec:
        return FieldSpec(self.text_field, self.id_field, self.category_field, tuple(self.metadata_fields),
                         self.max_doc_chars)

    def describe(self) -> str:
        """How errors and bad-input entries name this dataset, e.g. "allenai/c4/en split 'train'"."""
        name = f"{self.name}/{self.subset}" if self.subset else self.name
        at_revision = f" @ {self.revision}" if self.revision else ""
        return f"{name} split '{self.split}'{at_revision}"


def _check_data_files(key: str, value: object) -> None:
    if value is None or (isinstance(value, str) and value):
        return
    if isinstance(value, (list, tuple)) and value:
        check_names(key, value)
        return
    if isinstance(value, dict) and value and all(isinstance(split, str) for split in value):
        for split, files in value.items():
            _check_data_files(f"{key}.{split}", files)
        return
    raise ConfigError(key, value, "null, a path or glob, a non-empty list of them, or a mapping from split "
                                  "name to those")


def read_hf(cfg: HFConfig, log: BadInputLog) -> Iterator[Document]:
    """Stream the documents of one split. Config, access and schema errors raise here, not mid-stream."""
    cfg.validate()
    dataset = _load(cfg, streaming=cfg.streaming, cache_dir=cfg.cache_dir)
    _check_columns(dataset.features, cfg)
    names = _class_names(dataset.features, cfg.category_field)
    return _documents(dataset if names is None else _named_labels(dataset, cfg.category_field, names), cfg, log)


def _class_names(features: Any, field: str | None) -> list[str] | None:
    """The label names of a `ClassLabel` category column (ccdv/arxiv-classification's `label`: 0 -> 'math.AC'),
    so categories read as names rather than integers; None for any other column."""
    feature = features.get(field) if features is not None and field else None
    names = getattr(feature, "names", None)
    return list(names) if isinstance(names, list) and names else None


def _named_labels(rows: Iterable[dict[str, Any]], field: str, names: list[str]) -> Iterator[dict[str, Any]]:
    for record in rows:
        value = record.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
            record = {**record, field: names[value]}
        yield record


@sources.register
class HFSource(Source):
    """A Hugging Face dataset split (`dataset.source: hf`, `dataset.hf: {name: ...}`)."""

    name = "hf"
    Config = HFConfig

    def documents(self) -> Iterator[Document]:
        return read_hf(self.config, self.bad_input)

    def identity(self) -> dict[str, Any]:
        cfg = self.config
        cfg.validate()
        return {"source": self.name, "version": self.version, "name": cfg.name, "subset": cfg.subset,
                "split": cfg.split, "revision": cfg.revision, "resolved_revision": resolve_revision(cfg),
                "files": local_data_files(cfg)}

    def description(self) -> str:
        cfg = self.config
        return f"Hugging Face dataset {cfg.name} ({cfg.subset or 'default'}, split {cfg.split})"


# Asked once per process: the stage key and the ingest itself both need it, and a failure warns once.
_RESOLVED: dict[tuple[Any, ...], str | None] = {}


def resolve_revision(cfg: HFConfig) -> str | None:
    """The commit `cfg.revision` (default branch when None) points at, or None when it cannot be told."""
    if cfg.revision is not None and _COMMIT.fullmatch(cfg.revision):
        return cfg.revision
    if _is_local(cfg.name):
        return None  # packaged builder or folder: `local_data_files` identifies the data
    key = (cfg.name, cfg.subset, cfg.revision, cfg.cache_dir, cfg.trust_remote_code)
    if key not in _RESOLVED:
        _RESOLVED[key] = _resolve_revision(cfg)
    return _RESOLVED[key]


def _resolve_revision(cfg: HFConfig) -> str | None:
    # Deferred: importing datasets costs about a second, and local-only runs never need it.
    import datasets

    try:
        with offline_unless_reachable():
            builder = datasets.load_dataset_builder(cfg.name, cfg.subset, revision=cfg.revision, cache_dir=cfg.cache_dir,
                                                    token=_hf_token(), **_remote_code_kwargs(cfg))
    except Exception as err:  # any failure means "unknown", never a failed run: ingest reports real errors
        logger.warning("could not resolve which commit %s is at (%s: %s); the ingest is keyed by the configured "
                       "revision %r instead. Pin revision to a commit, or set HF_HUB_OFFLINE=1 to resolve it "
                       "from the local cache", cfg.describe(), type(err).__name__, err, cfg.revision)
        return None
    commit = getattr(builder, "hash", None)  # for a Hub dataset, `datasets` keys its cache by the commit
    return commit if isinstance(commit, str) and _COMMIT.fullmatch(commit) else None


def local_data_files(cfg: HFConfig) -> list[dict[str, Any]]:
    """Identities of the local files a packaged builder or a local folder reads, in a stable order.

    Remote data_files (URLs) are listed by address only; a Hub dataset's data_files are paths inside the
    repository, which its resolved commit already pins.
    """
    if not _is_local(cfg.name):
        return []
    patterns = [cfg.name] if os.path.isdir(cfg.name) else _patterns(cfg.data_files)
    entries: dict[str, dict[str, Any]] = {}
    for pattern in patterns:
        if "://" in pattern:
            entries.setdefault(pattern, {"path": pattern, "remote": True})
            continue
        for path in _local_matches(os.path.expanduser(pattern)):
            entries.setdefault(path, file_identity(path, path))
    return list(entries.values())


def _is_local(name: str) -> bool:
    return name in _PACKAGED_BUILDERS or os.path.isdir(name)


def _patterns(data_files: str | list[str] | dict[str, str | list[str]] | None) -> list[str]:
    if data_files is None:
        return []
    if isinstance(data_files, str):
        return [data_files]
    if isinstance(data_files, dict):
        return [pattern for files in data_files.values() for pattern in _patterns(files)]
    return list(data_files)


def _local_matches(pattern: str) -> list[str]:
    """Regular files a pattern names: a file, every file below a folder (hidden ones skipped), or a glob.
    FIFOs and dangling links are not regular files, so nothing here opens them."""
    if os.path.isdir(pattern):
        found = _files_below(pattern)
    else:
        found = glob.glob(pattern, recursive=True) if glob.has_magic(pattern) else [pattern]
    return sorted(path for path in found if os.path.isfile(path))


def _files_below(folder: str) -> list[str]:
    found: list[str] = []
    for parent, subfolders, names in os.walk(folder):  # followlinks=False: a link loop cannot trap it
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        found += [os.path.join(parent, name) for name in names if not name.startswith(".")]
    return found


def prefetch(cfg: HFConfig, cache_dir: str | None = None) -> str:
    """Download and prepare the whole split in the local cache, so later runs need no network.

    Returns a one-line description (rows, files, size, where). Pair it with HF_HUB_OFFLINE=1 on the
    machines that run the experiment.
    """
    cfg.validate()
    dataset = _load(cfg, streaming=False, cache_dir=cache_dir if cache_dir is not None else cfg.cache_dir)
    files = sorted({entry["filename"] for entry in dataset.cache_files})
    size_mb = sum(os.path.getsize(path) for path in files) / 1e6
    where = os.path.dirname(os.path.commonpath(files)) if files else "memory"
    return (f"{cfg.describe()}: {dataset.num_rows} rows in {len(files)} Arrow file(s), {size_mb:.1f} MB "
            f"under {where}")


def _load(cfg: HFConfig, streaming: bool, cache_dir: str | None) -> Any:
    """`datasets.load_dataset` with its failures turned into InputErrors a user can act on."""
    # Deferred: importing datasets costs about a second, and local-only runs never need it.
    import datasets
    from datasets.exceptions import DatasetGenerationError

    # Its "Generating train split" bars would land inside corpuslab's log lines; ingest reports its own rate.
    datasets.disable_progress_bars()
    kwargs = _load_kwargs(cfg, streaming, cache_dir)
    try:
        if _is_local(cfg.name):
            return datasets.load_dataset(cfg.name, cfg.subset, **kwargs)
        with offline_unless_reachable():
            return datasets.load_dataset(cfg.name, cfg.subset, **kwargs)
    except (ConnectionError, TimeoutError) as err:
        offline = bool(datasets.config.HF_HUB_OFFLINE) or not hub_reachable()
        raise InputError(cfg.describe(), _unreachable_message(cfg, err, offline)) from err
    except DatasetGenerationError as err:  # a bad file while preparing the cache
        cause = err.__cause__ or err
        raise InputError(cfg.describe(), f"datasets could not prepare the split ({cause})") from err
    except FileNotFoundError as err:
        # DatasetNotFoundError and DataFilesNotFoundError are FileNotFoundErrors.
        raise InputError(cfg.describe(), f"{err}. Check the dataset name and data_files; for a gated or "
                                         "private dataset set HF_TOKEN") from err
    except ValueError as err:  # unknown split or subset, bad data_files pattern
        raise InputError(cfg.describe(), str(err)) from err


def _load_kwargs(cfg: HFConfig, streaming: bool, cache_dir: str | None) -> dict[str, Any]:
    # Holds the token: pass it to load_dataset only, never log or return it to a caller that keeps it.
    kwargs: dict[str, Any] = {"split": cfg.split, "streaming": streaming}
    optional = {"revision": cfg.revision, "data_files": cfg.data_files, "cache_dir": cache_dir,
                "token": _hf_token()}
    kwargs.update({key: value for key, value in optional.items() if value is not None})
    kwargs.update(_remote_code_kwargs(cfg))
    return kwargs


def _hf_token() -> str | None:
    for var in TOKEN_ENV_VARS:
        if os.environ.get(var):
            return os.environ[var]
    return None  # datasets then falls back to the token saved by `huggingface-cli login`, if any


def _remote_code_kwargs(cfg: HFConfig) -> dict[str, bool]:
    if not cfg.trust_remote_code:
        return {}
    if _load_dataset_accepts("trust_remote_code"):
        logger.warning("dataset.hf.trust_remote_code is true: the loading script of '%s' is Python code from "
                       "the Hub and will run on this machine with your permissions", cfg.name)
        return {"trust_remote_code": True}
    logger.warning("dataset.hf.trust_remote_code is true, but the installed datasets %s does not run dataset "
                   "loading scripts any more, so the option is ignored. If '%s' needs a script it will fail "
                   "to load: use its Parquet export (revision: refs/convert/parquet) or local files instead",
                   _datasets_version(), cfg.name)
    return {}


@functools.cache
def _load_dataset_accepts(parameter: str) -> bool:
    """Whether the installed `load_dataset` has this named parameter (datasets < 4 had trust_remote_code)."""
    import datasets

    return parameter in inspect.signature(datasets.load_dataset).parameters


def _datasets_version() -> str:
    import datasets

    return datasets.__version__


def _unreachable_message(cfg: HFConfig, err: Exception, offline: bool) -> str:
    if offline:
        first = (f"the Hub is not reachable (or HF_HUB_OFFLINE is set) and '{cfg.name}' is not in the local cache "
                 f"({err}). Prefetch it "
                 "(with the same cache_dir and revision) on a machine that can reach the Hub")
    else:
        first = (f"could not reach the Hugging Face Hub to load '{cfg.name}' ({err}). If this dataset was "
                 "prefetched before, set HF_HUB_OFFLINE=1 to use the local cache; otherwise prefetch it on a "
                 "machine that can reach the Hub")
    return (f"{first}, or read local files with dataset.local (or dataset.hf name 'json' / 'parquet' with "
            "data_files)")


def _check_columns(features: Any, cfg: HFConfig) -> None:
    """A configured column the dataset lacks entirely is a config mistake: raise under either policy."""
    if features is None:  # some streaming builders only learn their columns from the first rows
        return
    missing = [name for name in cfg.field_spec().required_columns() if name not in features]
    if missing:
        raise InputError(cfg.describe(), f"the dataset has columns {list(features)[:20]}; expected column(s) "
                                         f"{missing} (set dataset.hf.text_field / id_field / category_field)")


def _documents(rows: Iterable[dict[str, Any]], cfg: HFConfig, log: BadInputLog) -> Iterator[Document]:
    spec, where = cfg.field_spec(), cfg.describe()
    id_prefix = f"{cfg.name}/{cfg.subset}" if cfg.subset else cfg.name
    yielded = 0
    for row, record in enumerate(_guarded_rows(rows, where)):
        position = {"source": "hf", "hf_dataset": cfg.name, "hf_subset": cfg.subset, "hf_split": cfg.split,
                    "source_row": row}
        place = RecordPlace(where, row, f"{id_prefix}:{cfg.split}:{row}", position)
        doc = document_from_record(record, spec, place, cfg.on_bad_input, log)
        if doc is None:
            continue
        yield doc
        yielded += 1
        if cfg.max_docs is not None and yielded >= cfg.max_docs:
            return  # stop before asking for another row: a stream may fetch a new shard for it


def _guarded_rows(rows: Iterable[dict[str, Any]], where: str) -> Iterator[dict[str, Any]]:
    """The rows, with any error from inside `datasets` (Arrow, network, parse) turned into an InputError."""
    iterator = iter(rows)
    row = 0
    while True:
        try:
            record = next(iterator)
        except StopIteration:
            return
        except Exception as err:  # the library raises many unrelated types; all end the read
            raise InputError(where, f"datasets failed while reading row {row} ({type(err).__name__}: {err}); "
                                    "expected readable rows", row) from err
        yield record
        row += 1
