"""`corpuslab dedup`: deduplicate files on their own, without an experiment.

    corpuslab dedup INPUT... --out DIR [--recipe exact|near] [--similarity jaccard|containment]
                    [--threshold T] [--keep earliest|longest|max:FIELD|min:FIELD] ...

INPUT is local files, folders or globs (read by the `local` source: txt, jsonl, parquet, csv, with
`--encoding`), an fsspec URL (`s3://bucket/part-*.jsonl.gz`, read by the `hf` source's packaged json /
parquet / csv builders) or `hf:NAME` (a Hugging Face dataset, `--split`, `--subset`). The documents are
copied once into working Parquet shards, which the same engine as the `exact` and `near` recipes
(`corpuslab.curation.dedup`) scans in parallel; nothing else of an experiment (splits, canaries,
tokenizer, training) runs.

DIR receives:
    deduplicated.jsonl | .parquet   the kept documents in input order, in the input's format (parquet in, parquet out):
                                    the input records verbatim on the Arrow path (`dedup_fast`; no id column), else
                                    id, text, category, --fields, source_file / source_line (stats.json: output_rows)
    decisions.parquet               one row per document: kept, reason, cluster_id, duplicate_of, similarity
    pairs.parquet                   every verified pair: a, b, similarity, kind (exact | near)
    clusters.parquet                every document in a cluster of two or more: cluster_id, id, kept, size
    stats.json                      settings, counts by reason, engine statistics, bad input, timings
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from corpuslab.atomic import temp_path, write_json_atomic
from corpuslab.curation.decisions import ROWS_PER_GROUP
from corpuslab.curation.dedup.config import MinHashConfig, NormalizeConfig
from corpuslab.curation.dedup.scan import Ids
from corpuslab.curation.dedup.textbatch import release_memory
from corpuslab.documents import Document
from corpuslab.errors import ConfigError, CorpuslabError, InputError
from corpuslab.paths import credentials_help, credentials_refused
from corpuslab.shards import ShardWriter, read_documents
from corpuslab.tools import arrow_columns

RECIPES = ("exact", "near")
SIMILARITIES = ("jaccard", "containment")
KEEP_FIXED = ("earliest", "longest")
# Where --threshold is a containment, LSH must still propose pairs by their Jaccard: this default
# banding threshold proposes a pair with Jaccard 0.2 with probability ~0.9 (see ALGORITHMS in README).
CONTAINMENT_CANDIDATE_JACCARD = 0.2
URL_BUILDERS = {".jsonl": "json", ".json": "json", ".ndjson": "json", ".parquet": "parquet", ".csv": "csv",
                ".txt": "text"}
SHARD_DOCS = 20_000
DEFAULT_THRESHOLD = 0.85


PARQUET_CODECS = ("none", "lz4", "snappy", "zstd", "gzip", "brotli")


@dataclass(frozen=True)
class DedupToolConfig:
    """What `corpuslab dedup` reads, how it decides and what it keeps (one field per command-line option)."""

    inputs: list[str]
    out: str
    recipe: str = "near"
    similarity: str = "jaccard"
    threshold: float | None = None  # --recipe near only; None: 0.85 (`similarity_threshold`)
    candidate_threshold: float | None = None  # banding threshold; None: the threshold (Jaccard) or 0.2 (containment)
    num_perm: int = 128
    bands: int | None = None
    rows: int | None = None
    ngram: int = 5
    shingle: str = "word"
    seed: int = 1
    keep: str = "earliest"  # earliest | longest | max:FIELD | min:FIELD
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    text_field: str = "text"
    id_field: str | None = None
    fields: list[str] = field(default_factory=list)  # record fields carried to the output
    format: str = "auto"
    encoding: str | None = None
    split: str = "train"
    subset: str | None = None
    processes: int | None = None
    max_docs: int | None = None
    compression: str = "none"  # codec of a deduplicated.parquet: uncompressed unless asked (the write is then ~7x cheaper)

    def validate(self) -> None:
        if not self.inputs:
            raise ConfigError("INPUT", self.inputs, "at least one file, folder, glob, fsspec URL or hf:NAME")
        if self.recipe not in RECIPES:
            raise ConfigError("--recipe", self.recipe, f"one of {RECIPES}")
        if self.similarity not in SIMILARITIES:
            raise ConfigError("--similarity", self.similarity, f"one of {SIMILARITIES}")
        if self.similarity == "containment" and self.recipe != "near":
            raise ConfigError("--similarity", self.similarity, "'jaccard' with --recipe exact (containment needs --recipe near)")
        if self.threshold is not None and self.recipe != "near":
            raise ConfigError("--threshold", self.threshold, "no --threshold with --recipe exact (it compares near "
                                                             "duplicates: add --recipe near, or leave it out)")
        if not 0 < self.similarity_threshold <= 1:
            raise ConfigError("--threshold", self.threshold, "a number in (0, 1]")
        if self.processes is not None and self.processes < 1:
            raise ConfigError("--processes", self.processes, "an integer >= 1")
        if self.compression not in PARQUET_CODECS:
            raise ConfigError("--compression", self.compression, f"one of {PARQUET_CODECS}")
        keep_field(self.keep)
        try:
            self.minhash().validate("--minhash")
        except ConfigError as err:  # named by this tool's flags: --rows, --bands, --num-perm, --candidate-threshold...
            flag = err.key.removeprefix("--minhash.")
            flag = "--candidate-threshold" if flag == "threshold" else "--" + flag.replace("_", "-")
            raise ConfigError(flag, err.value, _flag_words(err.expected)) from None
        self.normalize.validate("--normalize")
        kinds = {_input_kind(path) for path in self.inputs}
        if len(kinds) > 1 or (kinds == {"hf"} and len(self.inputs) > 1):
            raise ConfigError("INPUT", self.inputs, "local paths, or fsspec URLs, or one hf:NAME, not a mix")

    @property
    def similarity_threshold(self) -> float:
        return DEFAULT_THRESHOLD if self.threshold is None else self.threshold

    def minhash(self) -> MinHashConfig:
        candidate = self.candidate_threshold
        threshold = self.similarity_threshold
        if candidate is None:
            candidate = threshold if self.similarity == "jaccard" else min(threshold, CONTAINMENT_CANDIDATE_JACCARD)
        return MinHashConfig(shingle=self.shingle, ngram=self.ngram, num_perm=self.num_perm, threshold=candidate,
                             bands=self.bands, rows=self.rows, seed=self.seed)


def _flag_words(text: str) -> str:
    """A MinHashConfig message in this tool's flags."""
    return (text.replace("bands and rows", "--bands and --rows").replace("bands * rows == num_perm", "--bands * --rows == --num-perm")
            .replace("num_perm", "--num-perm"))


def keep_field(keep: str) -> tuple[str, str | None]:
    """('earliest' | 'longest' | 'max' | 'min', the metadata field for max/min)."""
    if keep in KEEP_FIXED:
        return keep, None
    order, _, name = keep.partition(":")
    if order not in ("max", "min") or not name:
        raise ConfigError("--keep", keep, "earliest, longest, max:FIELD (e.g. max:quality) or min:FIELD (e.g. min:date)")
    return order, name


def _input_kind(path: str) -> str:
    if path.startswith("hf:"):
        return "hf"
    return "url" if "://" in path else "local"


# --- reading --------------------------------------------------------------------------------------------


def open_input(cfg: DedupToolConfig):
    """The source plug-in that reads `cfg.inputs`, and the output format ('jsonl' or 'parquet')."""
    from corpuslab.schema import from_dict

    kind = _input_kind(cfg.inputs[0])
    fields = _record_fields(cfg)
    if kind == "local":
        from corpuslab.sources.local import LocalConfig, LocalSource

        params = {"paths": list(cfg.inputs), "format": cfg.format, "text_field": cfg.text_field,
                  "id_field": cfg.id_field, "metadata_fields": fields, "max_docs": cfg.max_docs}
        if cfg.encoding is not None:
            params["encoding"] = cfg.encoding
        source = LocalSource(from_dict(LocalConfig, params, "dedup"))
        files = source.files()
        parquet = bool(files) and all(_is_parquet(str(path), cfg.format) for path in files)
        return source, "parquet" if parquet else "jsonl"
    from corpuslab.sources.hf import HFConfig, HFSource

    if kind == "hf":
        params = {"name": cfg.inputs[0][3:], "subset": cfg.subset, "split": cfg.split}
        output = "jsonl"
    else:
        builder = _url_builder(cfg.inputs, cfg.format)
        params = {"name": builder, "data_files": list(cfg.inputs), "split": "train"}
        output = "parquet" if builder == "parquet" else "jsonl"
    params.update(text_field=cfg.text_field, id_field=cfg.id_field, metadata_fields=fields, max_docs=cfg.max_docs)
    return HFSource(from_dict(HFConfig, params, "dedup")), output


def _record_fields(cfg: DedupToolConfig) -> list[str]:
    _, keep_name = keep_field(cfg.keep)
    return list(dict.fromkeys([*cfg.fields, *([keep_name] if keep_name else [])]))


def _is_parquet(path: str, fmt: str) -> bool:
    return fmt == "parquet" or (fmt == "auto" and path.lower().endswith(".parquet"))


def _url_builder(urls: list[str], fmt: str) -> str:
    if fmt != "auto":
        return {"jsonl": "json", "txt": "text"}.get(fmt, fmt)
    builders = set()
    for url in urls:
        name = url.lower()
        for suffix in (".gz", ".zst", ".zstd", ".bz2", ".xz"):
            name = name.removesuffix(suffix)
        builders.add(next((b for ext, b in URL_BUILDERS.items() if name.endswith(ext)), None))
    if len(builders) != 1 or None in builders:
        raise ConfigError("INPUT", urls, "URLs of one format (.jsonl, .json, .parquet, .csv, .txt, optionally "
                                         "compressed), or --format jsonl | parquet | csv | txt")
    return builders.pop()


@dataclass
class Ingested:
    """The working shards and, per document in corpus order, what `--keep` ranks it by."""

    shards: list[Path]
    docs: int
    priority: np.ndarray | None
    missing_keep_field: int = 0


def ingest(documents: Iterator[Document], folder: Path, keep: str) -> Ingested:
    """Copy the documents into working shards, collecting the `--keep` key of each."""
    order, name = keep_field(keep)
    keys: list[Any] = []
    with ShardWriter(folder, shard_docs=SHARD_DOCS) as writer:
        for doc in documents:
            writer.write(doc)
            if order == "longest":
                keys.append(len(doc.text))
            elif name is not None:
                keys.append(doc.metadata.get(name))
    if order == "earliest":
        return Ingested(writer.paths, writer.count, None)
    if order == "longest":
        return Ingested(writer.paths, writer.count, -np.asarray(keys, dtype=np.float64))
    return _field_priority(writer.paths, writer.count, keys, order, name)


def _fast_input(cfg: DedupToolConfig, source):
    """The Arrow path's view of the inputs (`dedup_fast.fast_input`) where they allow it, else None."""
    from corpuslab.sources.local import LocalSource
    from corpuslab.tools import dedup_fast

    if not isinstance(source, LocalSource):
        return None
    return dedup_fast.fast_input(cfg, source.files(), source.config.max_doc_chars)


def _ingest_fast(cfg: DedupToolConfig, source, work: Path):
    """The Arrow path (`dedup_fast`) where the inputs allow it, else None."""
    from corpuslab.tools import dedup_fast

    inputs = _fast_input(cfg, source)
    ingested = dedup_fast.ingest_fast(inputs, cfg.text_field, work, lengths=cfg.keep == "longest") if inputs else None
    if ingested is None:
        shutil.rmtree(work, ignore_errors=True)
    else:
        source.bad_input.merge(inputs.bad_input)
    return ingested


def _exact_streamed(cfg: DedupToolConfig, source, out: Path):
    """Exact dedup of plain JSON Lines or Parquet inputs in one pass over the Arrow batches (`dedup_fast.scan_exact`):
    (the inputs, their Ingested, the result, the kept Parquet rows already written to a temporary file or None),
    or None where the working-shard path must run. One process: the scan is as fast as reading the files, so workers
    would only add the cost of shipping the text to them. Parquet inputs keeping the earliest copy are written in
    the same pass (the others need every digest before the first row can be written: a second read)."""
    from corpuslab.curation.dedup.clusters import Links, build_result
    from corpuslab.curation.dedup.exact import exact_links
    from corpuslab.tools import dedup_fast

    if cfg.recipe != "exact":
        return None
    inputs = _fast_input(cfg, source)
    if inputs is None:
        return None
    cfg.normalize.validate()
    one_pass = dedup_fast.ONE_PASS_PARQUET and inputs.format == "parquet" and cfg.keep == "earliest"
    written = temp_path(out / "deduplicated.parquet") if one_pass else None
    scan = dedup_fast.scan_exact(inputs, cfg.text_field, cfg.normalize, lengths=cfg.keep == "longest", out=written,
                                 compression=cfg.compression)
    if scan is None:
        if written is not None:
            written.unlink(missing_ok=True)
        return None
    source.bad_input.merge(inputs.bad_input)
    started = time.perf_counter()
    fast = dedup_fast.FastIngested([], len(scan.ids), scan.lengths, inputs)
    ingested = fast_ingested(fast, cfg.keep)
    source_ids, target_ids = exact_links(scan.digests, ~scan.empty)
    stats = {"method": "exact", "normalize": str(cfg.normalize), "shards": len(inputs.files), "docs_in": len(scan.ids),
             "empty_docs": int(scan.empty.sum())}
    result = build_result(_ArrowIds(scan.ids.data, scan.ids.offsets), Links(exact_source=source_ids, exact_target=target_ids), stats, ingested.priority)
    result.stats["runtime"] = {"decide_s": time.perf_counter() - started}  # the scan is part of reading
    return fast, ingested, result, (written, scan.kept) if written is not None else None


def fast_ingested(fast, keep: str) -> Ingested:
    """The Arrow path's `Ingested`; for --keep longest the priority replaces `fast.lengths` (held once, not twice)."""
    priority = -fast.lengths.astype(np.float64) if keep == "longest" else None
    fast.lengths = None
    return Ingested(fast.shards, fast.docs, priority)


def _field_priority(shards: list[Path], docs: int, keys: list[Any], order: str, name: str) -> Ingested:
    """Rank by a metadata field: numbers by value, strings (ISO dates) in sorted order; a document without
    the field is never preferred over one with it."""
    present = [k for k in keys if k is not None and not (isinstance(k, float) and math.isnan(k))]
    kinds = {isinstance(k, (int, float)) and not isinstance(k, bool) for k in present}
    if len(kinds) > 1:
        raise ConfigError("--keep", f"{order}:{name}", f"a field holding only numbers or only strings; '{name}' holds both")
    ranks = {value: rank for rank, value in enumerate(sorted(set(present)))}
    sign = -1.0 if order == "max" else 1.0
    priority = np.array([sign * ranks[k] if k in ranks else np.inf for k in keys], dtype=np.float64)
    return Ingested(shards, docs, priority, missing_keep_field=len(keys) - len(present))


# --- deciding and writing -------------------------------------------------------------------------------


# How the sources' messages name this tool's settings (`corpuslab.sources.hints`): its flags, not `dataset.*` keys.
SETTING_NAMES = {"text_field": "--text-field", "id_field": "--id-field", "category_field": "",
                 "encoding_hint": "pass --encoding utf-8,cp1252 to read what is not UTF-8 as Windows-1252",
                 "csv_header_hint": "a CSV input needs a header row naming its columns: add one, or convert the file to JSON Lines"}


def run_dedup(cfg: DedupToolConfig, log=print) -> dict[str, Any]:
    """Read, deduplicate and write `cfg.out`; returns the stats written to stats.json."""
    from corpuslab.sources import hints

    with hints.naming(SETTING_NAMES):
        try:
            return _run_dedup(cfg, log)
        except Exception as err:  # storage refusing a read after the listing (`check_urls`) passed: name the URL
            local_file = isinstance(err, OSError) and err.filename is not None
            if isinstance(err, CorpuslabError) or local_file or _input_kind(cfg.inputs[0]) != "url" or not credentials_refused(err):
                raise
            raise InputError(", ".join(cfg.inputs), _credentials_message(cfg.inputs[0], err, "read")) from None


def _run_dedup(cfg: DedupToolConfig, log) -> dict[str, Any]:
    from corpuslab.executor import LocalExecutor, SerialExecutor

    cfg.validate()
    check_out(cfg)
    check_urls(cfg)
    started = time.perf_counter()
    out = Path(cfg.out)
    source, output_format = open_input(cfg)  # a missing input stops before --out is created
    created = not out.exists()
    clear_previous_outputs(out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".dedup-work-", dir=out))
    # This run's outputs are written into `new` and moved into --out only once all are written, so a run that
    # fails leaves a previous run's outputs whole (and complete, with their stats.json) or none at all.
    new = work / "new"
    new.mkdir()
    try:
        clock = time.perf_counter()
        written = None
        streamed = _exact_streamed(cfg, source, new)
        if streamed is not None:
            fast, ingested, result, written = streamed
        else:
            fast = _ingest_fast(cfg, source, work / "fast")
            ingested = fast_ingested(fast, cfg.keep) if fast else ingest(source.documents(), work / "docs", cfg.keep)
        read_s = time.perf_counter() - clock
        _check_read(cfg, source, ingested)
        if streamed is None:
            executor = SerialExecutor() if cfg.processes == 1 else LocalExecutor(cfg.processes)
            with executor:
                try:
                    result = _find(cfg, ingested, executor)
                except InputError as err:
                    raise _user_file_error(err, ingested, work, cfg.inputs) from None
        clock = time.perf_counter()
        counts, kept, engine = _write_tables(new, result), result.kept_mask(), result.stats
        streamed = result = ingested.priority = None  # the documents need only `kept`: free the rest before reading them again
        release_memory()
        if fast:
            _write_kept_fast(new, output_format, fast, kept, cfg.compression, written)
        else:
            _write_kept(cfg, new, output_format, ingested, kept)
        write_s = time.perf_counter() - clock
        _remove_outputs(out)  # the previous run's, stats.json first: from here until this run's stats.json, none looks complete
        for path in new.iterdir():
            os.replace(path, out / path.name)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        if created and not any(path.name != "deduplicated.parquet.tmp" and not path.name.startswith(".")
                               for path in out.iterdir()):
            shutil.rmtree(out, ignore_errors=True)  # made by this run and holding only its scratch: leave no empty --out
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    stats = {
        "inputs": list(cfg.inputs),
        "settings": _settings(cfg),
        **counts,
        "missing_keep_field": ingested.missing_keep_field,
        # what a row of deduplicated.* is: the input record as read (the Arrow path), or id + text + fields + source_*
        "output_rows": "input_records" if fast else "documents",
        "bad_input": source.bad_input_summary(),
        "engine": engine,
        "runtime": {"read_s": read_s, **engine.get("runtime", {}), "write_s": write_s,
                    "total_s": time.perf_counter() - started},
    }
    write_json_atomic(out / "stats.json", stats)
    for line in summary_lines(stats, out, output_format):
        log(line)
    return stats


def check_out(cfg: DedupToolConfig) -> None:
    """Refuse an --out that the inputs would read: inside a folder given as INPUT (read recursively), the folder
    of a glob, or under the folder of a `**` glob. The next run would take this run's outputs for input. Also the
    folder holding an input file (`data/*.jsonl --out data` once the shell has expanded the glob): its outputs
    would land beside the inputs, and a `deduplicated.jsonl` given as input would be overwritten. `file://` URLs are
    checked as the local paths they name; an --out that is an existing file is refused too."""
    import glob

    from corpuslab.paths import strip_file_scheme

    if Path(cfg.out).exists() and not Path(cfg.out).is_dir():
        raise ConfigError("--out", cfg.out, "a folder (new, or holding a previous dedup run's outputs); this is an existing file")
    kind = _input_kind(cfg.inputs[0])
    if kind == "hf":
        return
    # `file://` URLs name local paths: the same folders are read (a remote URL cannot hold a local --out)
    local = [strip_file_scheme(given) for given in cfg.inputs if kind == "local" or given.startswith("file://")]
    out = Path(cfg.out).resolve()
    for given in local:
        if glob.has_magic(given):
            parts = Path(given).parts
            fixed = next(k for k, part in enumerate(parts) if glob.has_magic(part))
            base, recursive = Path(*parts[:fixed]) if fixed else Path("."), "**" in given
        elif Path(given).is_dir():
            base, recursive = Path(given), True
        else:
            if Path(given).resolve().parent == out:
                raise ConfigError("--out", cfg.out, f"a folder other than the one holding the input {given!r} (this run's "
                                                    "outputs would land beside the inputs, and a next run given that "
                                                    "folder's files would read them as input): e.g. a sibling folder")
            continue
        base = base.resolve()
        if out == base or (recursive and base in out.parents):
            raise ConfigError("--out", cfg.out, f"a folder outside the input {given!r} (the next run would read this run's "
                                                "outputs as input): e.g. a sibling folder")


# What a dedup run writes in --out (stats.json, written last, first here: removed first, a folder without it is no
# finished run) and the scratch a run makes there while it works.
OUTPUT_FILES = ("stats.json", "deduplicated.jsonl", "deduplicated.parquet", "decisions.parquet", "pairs.parquet",
                "clusters.parquet")


def _is_scratch(name: str) -> bool:
    return name.startswith(".dedup-work-") or (name.startswith(".tmp-") and name.split("-", 2)[-1] in OUTPUT_FILES)


def clear_previous_outputs(out: Path) -> None:
    """Check an existing --out holds only a previous dedup run's outputs (which this run replaces once its own are
    all written) and remove the scratch a killed run left; any other file stops the run."""
    if not out.is_dir():
        return
    others = sorted(path.name for path in out.iterdir() if path.name not in OUTPUT_FILES and not _is_scratch(path.name))
    if others:
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        raise InputError(f"--out {out}", f"holds files that are not a dedup run's outputs ({shown}); expected a new or empty "
                                         "folder, or one holding only a previous dedup run's outputs (which this run "
                                         "replaces): choose another --out")
    for path in out.iterdir():
        if _is_scratch(path.name):
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


def _remove_outputs(out: Path) -> None:
    for name in OUTPUT_FILES:
        (out / name).unlink(missing_ok=True)


def check_urls(cfg: DedupToolConfig) -> None:
    """List URL inputs before `datasets` does: a glob matching nothing, a missing file and missing or refused
    credentials each stop with an InputError naming the URL (`datasets` would raise StopIteration or botocore's
    own errors)."""
    import glob

    from corpuslab.paths import filesystem

    if _input_kind(cfg.inputs[0]) != "url":
        return
    for url in cfg.inputs:
        fs, path = filesystem(url, "INPUT")
        try:
            if glob.has_magic(path):
                if not fs.glob(path):
                    raise InputError(url, "the glob matches no file; expected at least one input file")
            elif not fs.exists(path):
                raise InputError(url, "no such file; expected an existing file or a glob of files")
        except InputError:
            raise
        except Exception as err:
            if not credentials_refused(err):
                text = " ".join(str(err).split())[:300]
                raise InputError(url, f"listing the input failed with {type(err).__name__}: {text}. Check the URL and "
                                      "the network, then rerun") from None
            raise InputError(url, _credentials_message(url, err, "list")) from None


def _credentials_message(url: str, err: BaseException, doing: str) -> str:

    return f"the storage refused to {doing} the input ({type(err).__name__}: {' '.join(str(err).split())[:300]}); {credentials_help(url)}"


def _user_file_error(err: InputError, ingested: Ingested, work: Path, inputs: list[str]) -> InputError:
    """An error the engine raised about a working shard, about the user's input instead: a repeated --id-field value
    names the input file and line (or row) of its first two records."""
    import re

    match = re.match(r"id (.+) is not unique", err.problem)
    if match is None or work.resolve() not in Path(err.path).resolve().parents:
        return err
    import ast

    doc_id = ast.literal_eval(match.group(1))
    places = []
    for shard in ingested.shards:
        table = pq.read_table(shard, columns=[name for name in ("id", "meta") if name in pq.read_schema(shard).names])
        rows = pc.indices_nonzero(pc.equal(table["id"], doc_id)).to_pylist()
        for row in rows:
            meta = json.loads(table["meta"][row].as_py() or "{}") if "meta" in table.column_names else {}
            if "source_file" in meta:
                if "source_line" in meta:
                    places.append(f"{meta['source_file']}:{meta['source_line']}")
                elif "source_row" in meta:  # Parquet rows, from 0
                    places.append(f"{meta['source_file']} row {meta['source_row']}")
                else:
                    places.append(str(meta["source_file"]))
        if len(places) >= 2:
            break
    if len(places) < 2:
        return InputError(", ".join(inputs), f"--id-field value {doc_id!r} is not unique; expected one record per id")
    return InputError(places[1], f"--id-field value {doc_id!r} is not unique (also at {places[0]}); expected one record per id")


def _check_read(cfg: DedupToolConfig, source, ingested: Ingested) -> None:
    """Stop before deciding anything when the run could only write nothing useful: no document was read (every
    input empty, or no record with --text-field / --id-field), or no document has the --keep field."""
    bad = source.bad_input
    if ingested.docs == 0:
        for reason, flag, value in (("missing_text_field", "--text-field", cfg.text_field), ("missing_id_field", "--id-field", cfg.id_field)):
            if bad.counts.get(reason):
                example = bad.examples[reason][0]
                raise ConfigError(flag, value, f"a field of the input records; no record has it, so no document was read "
                                               f"({bad.counts[reason]} records skipped; {example['file']}:{example['line']}: "
                                               f"{example['detail']})")
        counts = dict(sorted(bad.counts.items()))
        raise InputError(", ".join(cfg.inputs), "no document was read, so there is nothing to deduplicate; expected at "
                                                f"least one non-empty document (bad input: {counts or 'none'})")
    order, name = keep_field(cfg.keep)
    if name is not None and ingested.missing_keep_field == ingested.docs:
        seen = _fields_seen(source)
        raise ConfigError("--keep", cfg.keep, f"a field some documents have; none of the {ingested.docs} documents has "
                                              f"'{name}'" + (f" (fields seen: {seen})" if seen is not None else ""))


def _fields_seen(source, files: int = 10) -> list[str] | None:
    """The fields of the first record of the first few local inputs (Parquet columns, JSON Lines keys, a CSV header),
    for messages; None where they cannot be told cheaply."""
    import csv

    from corpuslab.sources.local import LocalSource

    if not isinstance(source, LocalSource):
        return None
    seen: dict[str, None] = {}
    for path in source.files()[:files]:
        name = str(path).lower()
        try:
            if name.endswith(".parquet"):
                seen.update(dict.fromkeys(pq.read_schema(path).names))
            elif name.endswith((".jsonl", ".json", ".ndjson")):
                with open(path, encoding="utf-8", errors="replace") as stream:
                    line = next((line for line in stream if line.strip()), None)
                record = json.loads(line) if line else None
                if isinstance(record, dict):
                    seen.update(dict.fromkeys(record))
            elif name.endswith(".csv"):
                with open(path, encoding="utf-8", errors="replace", newline="") as stream:
                    seen.update(dict.fromkeys(next(csv.reader(stream), [])))
        except (OSError, ValueError, pa.ArrowException):
            continue
    return list(seen) if seen else None


def _find(cfg: DedupToolConfig, ingested: Ingested, executor):
    if cfg.recipe == "exact":
        from corpuslab.curation.dedup.exact import find_exact_duplicates

        return find_exact_duplicates(ingested.shards, cfg.normalize, executor, ingested.priority)
    from corpuslab.curation.dedup.near import Similarity, find_exact_and_near_duplicates

    return find_exact_and_near_duplicates(ingested.shards, cfg.minhash(), cfg.normalize, executor,
                                          ingested.priority, Similarity(cfg.similarity, cfg.similarity_threshold))


def _settings(cfg: DedupToolConfig) -> dict[str, Any]:
    settings = {"recipe": cfg.recipe, "keep": cfg.keep, "normalize": str(cfg.normalize)}
    if cfg.recipe == "near":
        bands, rows = cfg.minhash().bands_rows()
        settings.update(similarity=cfg.similarity, threshold=cfg.similarity_threshold, minhash=str(cfg.minhash()),
                        bands=bands, rows=rows)
    return settings


def _write_kept_fast(out: Path, output_format: str, fast, kept: np.ndarray, compression: str = "none",
                     written: tuple[Path, np.ndarray] | None = None) -> None:
    """The kept documents (`kept`: a flag per document) of the Arrow path; `written`: (the kept rows already written
    in the scan's pass, which documents they are), checked against the decisions before the file takes its name."""
    from corpuslab.tools import dedup_fast

    path = out / f"deduplicated.{output_format}"
    if written is not None:
        tmp, streamed_kept = written
        if not np.array_equal(streamed_kept, kept):
            tmp.unlink(missing_ok=True)
            raise RuntimeError(f"the one-pass scan kept {int(streamed_kept.sum())} documents but the decisions keep {int(kept.sum())}")
    else:
        tmp = temp_path(path)
        dedup_fast.write_kept(fast.source, kept, tmp, compression)
    tmp.replace(path)


def _write_tables(out: Path, result) -> dict[str, Any]:
    """decisions.parquet, pairs.parquet and clusters.parquet, a row group at a time (then the ids they named are
    dropped); the counts for stats.json."""
    counts = result.write_every_row(out)
    _write_pairs(out / "pairs.parquet", result)
    clusters = _write_clusters(out / "clusters.parquet", result)
    result.forget_names()
    return {"docs_in": counts["input"], "kept": counts["kept"], "dropped": counts["dropped"],
            "dropped_by_reason": counts["dropped_by_reason"], "clusters": clusters,
            "verified_pairs": len(result.links.near_left)}


def _write_kept(cfg: DedupToolConfig, out: Path, output_format: str, ingested: Ingested, kept: np.ndarray) -> None:
    """The kept documents (`kept`: a flag per document) of the working-shard path."""
    docs_path = out / f"deduplicated.{output_format}"
    with _DocWriter(docs_path, output_format, cfg.text_field, cfg.id_field or "id", cfg.compression) as kept_docs:
        for position, doc in enumerate(read_documents(ingested.shards)):
            if kept[position]:
                kept_docs.write(doc)


PAIRS_SCHEMA = pa.schema([("a", pa.string()), ("b", pa.string()), ("similarity", pa.float64()), ("kind", pa.string())])
CLUSTERS_SCHEMA = pa.schema([("cluster_id", pa.string()), ("id", pa.string()), ("kept", pa.bool_()),
                             ("reason", pa.string()), ("size", pa.int64())])


def _write_pairs(path: Path, result) -> None:
    """Exact pairs (a copy and the copy it duplicates) and every verified near pair, in that order: built in
    Arrow from the result's arrays a row group at a time, no Python object per pair."""
    from corpuslab.curation.dedup.clusters import EXACT_CODE

    exact = result.reasons == EXACT_CODE
    links = result.links
    a = np.concatenate([result.members[exact], links.near_left])
    b = np.concatenate([result.duplicate_of[exact], links.near_right])
    similarity = np.concatenate([np.ones(int(exact.sum())), links.near_jaccard]).astype(np.float64)
    kind_names = arrow_columns.column(["exact", "near"], pa.string())
    with _TableWriter(path, PAIRS_SCHEMA) as writer:
        for first in range(0, len(a), ROWS_PER_GROUP):
            part = slice(first, first + ROWS_PER_GROUP)
            kinds = (np.arange(first, min(first + ROWS_PER_GROUP, len(a))) >= int(exact.sum())).astype(np.int64)
            writer.write(pa.Table.from_arrays([result.names(a[part]), result.names(b[part]), arrow_columns.numbers(similarity[part]),
                                               arrow_columns.take(kind_names, kinds)], schema=PAIRS_SCHEMA))


def _write_clusters(path: Path, result) -> int:
    """Every clustered document, grouped by cluster id (in string order), the kept one first, then corpus order.

    Sorted without the table: the clusters' ids are ranked (one id per cluster), the members ordered by (rank,
    kept first, corpus order), and the table built and written a row group at a time in that order."""
    from corpuslab.curation.dedup.clusters import KEPT, reason_column

    roots, sizes = np.unique(result.roots, return_counts=True)
    cluster = np.searchsorted(roots, result.roots)
    cluster_ids = result.names(roots)
    rank = np.empty(len(roots), dtype=np.int64)
    sorted_ids = pc.sort_indices(cluster_ids)  # read from its buffer: `to_numpy` would import pandas
    rank[np.frombuffer(sorted_ids.buffers()[1], dtype=np.uint64)[: len(sorted_ids)].astype(np.int64)] = np.arange(len(roots))
    kept = result.reasons == KEPT
    order = np.lexsort((~kept, rank[cluster]))  # stable: corpus order within (cluster, kept)
    with _TableWriter(path, CLUSTERS_SCHEMA) as writer:
        for first in range(0, len(order), ROWS_PER_GROUP):
            rows = order[first : first + ROWS_PER_GROUP]
            writer.write(pa.Table.from_arrays([arrow_columns.take(cluster_ids, cluster[rows]), result.names(result.members[rows]),
                                               arrow_columns.bools(kept[rows]), reason_column(result.reasons[rows]),
                                               arrow_columns.numbers(sizes[cluster[rows]].astype(np.int64))], schema=CLUSTERS_SCHEMA))
    return len(roots)


class _ArrowIds(Ids):
    """`Ids` taken by index through `arrow_columns` rather than `pa.array`, which imports pandas on first use (~0.4 CPU-s
    per process): the streamed exact run never does."""

    def take(self, docs: np.ndarray) -> pa.Array:
        return arrow_columns.take(self.arrow(), docs).cast(pa.string())


class _TableWriter:
    """A Parquet file (zstd) written a table (row group) at a time under a temporary name, renamed when complete."""

    def __init__(self, path: Path, schema: pa.Schema):
        self.path, self.schema, self._tmp = path, schema, temp_path(path)
        self._writer = pq.ParquetWriter(self._tmp, schema, compression="zstd")
        self._rows = 0

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table)
        self._rows += table.num_rows
        release_memory()

    def __enter__(self) -> _TableWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None and self._rows == 0:
            self._writer.write_table(self.schema.empty_table())  # an empty table's one row group, as `pq.write_table` writes
        self._writer.close()
        if exc_type is None:
            self._tmp.replace(self.path)
        else:
            self._tmp.unlink(missing_ok=True)


class _DocWriter:
    """Kept documents as JSON lines or Parquet: the id and text under the input's field names, then the
    metadata (category, --fields, source_file / source_line)."""

    def __init__(self, path: Path, output_format: str, text_field: str, id_field: str, compression: str = "none"):
        self.path, self.format, self.text_field, self.id_field = path, output_format, text_field, id_field
        self._compression = compression
        self._tmp = temp_path(path)
        self._rows: list[dict[str, Any]] = []
        self._stream = open(self._tmp, "w", encoding="utf-8") if output_format == "jsonl" else None
        self._parquet: pq.ParquetWriter | None = None

    def write(self, doc: Document) -> None:
        record = {self.id_field: doc.id, self.text_field: doc.text, **doc.metadata}
        if self._stream is not None:
            self._stream.write(json.dumps(record, ensure_ascii=False) + "\n")
            return
        self._rows.append(record)
        if len(self._rows) >= 4096:
            self._flush()

    def _flush(self) -> None:
        if not self._rows:
            return
        table = pa.Table.from_pylist(self._rows)
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self._tmp, table.schema, compression=self._compression)
        self._parquet.write_table(table.cast(self._parquet.schema))
        self._rows = []

    def __enter__(self) -> _DocWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if self._stream is not None:
            self._stream.close()
        else:
            self._flush()
            if self._parquet is None:
                pq.write_table(pa.table({self.id_field: pa.array([], pa.string()),
                                         self.text_field: pa.array([], pa.string())}), self._tmp)
            else:
                self._parquet.close()
        if exc_type is None:
            self._tmp.replace(self.path)
        else:
            self._tmp.unlink(missing_ok=True)


def summary_lines(stats: dict[str, Any], out: Path, output_format: str) -> list[str]:
    settings = stats["settings"]
    how = settings["recipe"]
    if how == "near":
        how += f" ({settings['similarity']} >= {settings['threshold']:g}, {settings['minhash']})"
    reasons = ", ".join(f"{n:,} {reason}" for reason, n in sorted(stats["dropped_by_reason"].items())) or "none"
    runtime = stats["runtime"]
    bad = stats["bad_input"]
    lines = [
        f"corpuslab dedup: {stats['docs_in']:,} documents, {how}, keep {settings['keep']}",
        f"  kept {stats['kept']:,}, dropped {stats['dropped']:,} ({reasons})",
        f"  {stats['clusters']:,} clusters, {stats['verified_pairs']:,} verified near pairs"
        + (f", {stats['engine'].get('candidate_pairs', 0):,} LSH candidates" if settings["recipe"] == "near" else ""),
        f"  {runtime['total_s']:.1f} s (read {runtime['read_s']:.1f} s, dedup {runtime.get('total_s', 0) - runtime['read_s'] - runtime['write_s']:.1f} s, "
        f"write {runtime['write_s']:.1f} s)",
    ]
    if bad.get("total"):
        lines.append(f"  bad input: {bad['counts']} (see stats.json)")
    if stats["missing_keep_field"]:
        lines.append(f"  {stats['missing_keep_field']:,} documents lack the --keep field: never preferred")
    lines.append(f"  -> {out}/deduplicated.{output_format}, decisions.parquet, pairs.parquet, clusters.parquet, stats.json")
    return lines
