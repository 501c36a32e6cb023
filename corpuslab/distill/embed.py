"""The `embed` stage: every document's embedding, streamed to memmap shards with its id.

    <stage>/emb-00000.npy    (rows, dim) float16/float32, rows in corpus order, unit length
    <stage>/ids-00000.parquet id and category of each row

Shards hold `shard_docs` documents each, in corpus order, so a killed run resumes without redoing its finished
shards (each shard is written as soon as its task finishes, in any order; its two files under temporary names,
renamed when whole, ids last). Memory
holds one shard's texts and one batch of vectors: it does not grow with the corpus.

The stage is shared: arms with the same embedder over the same documents read one folder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from corpuslab.artifacts import Stage, StageRunner
from corpuslab.atomic import temp_path
from corpuslab.distill.embedders import Embedder, build_embedder
from corpuslab.executor import Executor, SerialExecutor
from corpuslab.schema import require_int
from corpuslab.shards import read_documents

EMBED_VERSION = 1


@dataclass(frozen=True)
class EmbedConfig:
    """embedder: `hashed` (default), `sentence_transformer`, or your own, by name or `{name: ..., <params>}`.
    shard_docs: documents per memmap shard (the unit of resuming). dtype: what the vectors are stored as.
    max_chars: characters of each document embedded (the start of it)."""

    embedder: str | dict[str, Any] = "hashed"
    shard_docs: int = 8192
    dtype: Literal["float16", "float32"] = "float32"
    max_chars: int = 4000
    encode_batch: int = 512

    def validate(self, prefix: str) -> None:
        require_int(self.shard_docs, f"{prefix}.shard_docs", 1)
        require_int(self.max_chars, f"{prefix}.max_chars", 1)
        require_int(self.encode_batch, f"{prefix}.encode_batch", 1)
        self.build(prefix).check(f"{prefix}.embedder")

    def build(self, prefix: str = "embed") -> Embedder:
        return build_embedder(self.embedder, f"{prefix}.embedder")


def items_key(items: list[Path]) -> list[str]:
    """What identifies a list of document shards across runs: each path's last three parts (the stage
    folder, named by its fingerprint, the split and the file), not where the output folder lies."""
    return ["/".join(Path(p).parts[-3:]) for p in items]


def embed_stage(stages: StageRunner, cfg: EmbedConfig, items: list[Path], log: Callable[[str], None],
                executor: Executor | None = None) -> Stage:
    embedder = cfg.build()
    embedder.build_stages(stages, log)
    stage = stages.stage("embed-" + embedder.name, EMBED_VERSION, embedder.describe(), field_values(cfg), items_key(items))
    stages.run(stage, lambda work: build_embeddings(work, cfg, embedder, items, log, executor),
               label=f"embed ({embedder.name})", resumable=True)
    return stage


def field_values(cfg: EmbedConfig) -> dict[str, Any]:
    return {"shard_docs": cfg.shard_docs, "dtype": cfg.dtype, "max_chars": cfg.max_chars}


@dataclass(frozen=True)
class EmbedTask:
    """One embed shard: rows [first, end) of each listed document shard, in order, and the prepared embedder."""

    segments: tuple[tuple[str, int, int], ...]
    embedder: Embedder
    max_chars: int
    encode_batch: int


def embed_task(task: EmbedTask) -> tuple[list[str], list[str | None], np.ndarray]:
    """Executor task: ids, categories and (rows, dim) float32 vectors of one embed shard."""
    ids: list[str] = []
    categories: list[str | None] = []
    texts: list[str] = []
    for path, first, end in task.segments:
        table = pq.read_table(path, columns=["id", "text", "category"]).slice(first, end - first)
        ids += table.column("id").to_pylist()
        categories += table.column("category").to_pylist()
        texts += [text[: task.max_chars] for text in table.column("text").to_pylist()]
    parts = [task.embedder.encode(texts[start:start + task.encode_batch]) for start in range(0, len(texts), task.encode_batch)]
    return ids, categories, np.concatenate(parts) if parts else np.zeros((0, task.embedder.dim), np.float32)


def shard_segments(items: list[Path], shard_docs: int) -> list[tuple[tuple[str, int, int], ...]]:
    """Embed shards of `shard_docs` documents in corpus order, as (path, first row, end row) segments."""
    sizes = [pq.ParquetFile(path).metadata.num_rows for path in items]
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    shards = []
    for lo in range(0, int(starts[-1]), shard_docs):
        hi = min(lo + shard_docs, int(starts[-1]))
        shards.append(tuple((str(path), int(max(lo, a) - a), int(min(hi, b) - a))
                            for path, a, b in zip(items, starts[:-1], starts[1:]) if a < hi and b > lo))
    return shards


def build_embeddings(work: Path, cfg: EmbedConfig, embedder: Embedder, items: list[Path], log: Callable[[str], None],
                     executor: Executor | None = None) -> dict[str, Any]:
    """Embed shard by shard through `executor` (one task per shard) when the embedder ships to workers (the
    hashed one does; a neural encoder stays in this process, on its device); shards already written are kept."""
    def texts() -> Iterator[str]:
        return (d.text[: cfg.max_chars] for d in read_documents(items, columns=["text"]))

    embedder.prepare(texts, log)
    segments = shard_segments(items, cfg.shard_docs)
    done = [(work / f"ids-{s:05d}.parquet").exists() and (work / f"emb-{s:05d}.npy").exists() for s in range(len(segments))]
    todo = [s for s in range(len(segments)) if not done[s]]
    tasks = [EmbedTask(segments[s], embedder, cfg.max_chars, cfg.encode_batch) for s in todo]
    runner = executor if executor is not None and embedder.ships_to_workers else SerialExecutor()
    total = sum(end - first for s in range(len(segments)) if done[s] for _, first, end in segments[s])
    # Each shard is written as soon as it is done, in whatever order the executor finishes them: a task that
    # fails loses only the shards still running, not the finished ones queued behind it.
    completed = getattr(runner, "completed", None)
    finished = completed(embed_task, tasks) if completed is not None else enumerate(runner.map(embed_task, tasks))
    for written, (position, (ids, categories, vectors)) in enumerate(finished, start=1):
        s = todo[position]
        _write_shard(work / f"emb-{s:05d}.npy", work / f"ids-{s:05d}.parquet", ids, categories, vectors, cfg)
        total += len(ids)
        log(f"  embedded {total} documents ({len(segments) - len(todo) + written} shards)")
    resumed = len(segments) - len(todo)
    if resumed:
        log(f"  resumed: {resumed} shards were already embedded")
    return {"documents": total, "shards": len(segments), "dim": embedder.dim, "dtype": cfg.dtype,
            "embedder": embedder.describe(), "resumed_shards": resumed}


def _write_shard(emb_path: Path, ids_path: Path, ids: list[str], categories: list[str | None], vectors: np.ndarray,
                 cfg: EmbedConfig) -> None:
    tmp = temp_path(emb_path)
    np.save(tmp, np.asarray(vectors, dtype=cfg.dtype))
    tmp.replace(emb_path)
    table = pa.table({"id": ids, "category": pa.array(categories, pa.string())})
    tmp_ids = temp_path(ids_path)
    pq.write_table(table, tmp_ids)
    tmp_ids.replace(ids_path)  # last: a shard counts as done only when its ids are there


@dataclass
class Embeddings:
    """Reads an embed stage: shards in order, or rows by global index."""

    folder: Path
    _offsets: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        self.paths = sorted(self.folder.glob("emb-*.npy"))
        sizes = [np.load(p, mmap_mode="r").shape[0] for p in self.paths]
        self._offsets = list(np.cumsum([0, *sizes]))
        self.dim = np.load(self.paths[0], mmap_mode="r").shape[1] if self.paths else 0

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def shards(self) -> Iterator[tuple[int, pa.Table, np.ndarray]]:
        """(first row, ids table, float32 vectors) per shard."""
        for start, path in zip(self._offsets, self.paths):
            ids = pq.read_table(path.with_name(path.name.replace("emb-", "ids-").replace(".npy", ".parquet")))
            yield int(start), ids, np.asarray(np.load(path, mmap_mode="r"), dtype=np.float32)

    def id_tables(self) -> Iterator[tuple[int, pa.Table]]:
        """(first row, ids table) per shard, without the vectors."""
        for start, path in zip(self._offsets, self.paths):
            yield int(start), pq.read_table(path.with_name(path.name.replace("emb-", "ids-").replace(".npy", ".parquet")))

    def rows(self, index: np.ndarray) -> np.ndarray:
        """Vectors of the given global rows (sorted or not), as float32."""
        index = np.asarray(index, dtype=np.int64)
        out = np.empty((len(index), self.dim), dtype=np.float32)
        shard_of = np.searchsorted(self._offsets, index, side="right") - 1
        for shard in np.unique(shard_of):
            where = np.nonzero(shard_of == shard)[0]
            data = np.load(self.paths[shard], mmap_mode="r")
            out[where] = data[index[where] - self._offsets[shard]]
        return out

    def sample(self, n: int, seed: int) -> np.ndarray:
        """`n` rows drawn uniformly without replacement (all rows when n >= len), in row order."""
        if n >= len(self):
            return self.rows(np.arange(len(self)))
        picked = np.sort(np.random.default_rng(seed).choice(len(self), size=n, replace=False))
        return self.rows(picked)

