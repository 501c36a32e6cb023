"""`corpuslab export`: an arm's curated train split as a Hugging Face dataset folder.

    <out>/data/train-00000-of-00003.parquet   id, text, category, cluster (when the recipe clustered)
    <out>/README.md                           dataset card: YAML header (configs -> data_files) that
                                              `datasets.load_dataset(<out>)` reads, and the recipe with its config

Documents kept by the arm's decision table are written once each (an upsampled document still once; its
`repeat` is a column), in corpus order; canaries planted by the experiment are left out. The folder is
written under a temporary name and renamed when whole.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from corpuslab.curation.decisions import read_decisions
from corpuslab.shards import read_documents

SHARD_ROWS = 100_000


def export_dataset(curate: Path, items: list[Path], out: Path, recipe: dict[str, Any], arm: str, experiment: str) -> dict[str, Any]:
    table = read_decisions(curate, ["id", "kept", "cluster_id", "repeat"]).to_pylist()
    kept = {r["id"]: r for r in table if r["kept"]}
    out = Path(out)
    tmp = out.with_name(f".tmp-{out.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "data").mkdir(parents=True)
    rows: list[dict[str, Any]] = []
    shards: list[Path] = []
    documents = 0
    for doc in read_documents(items):
        if doc.id not in kept or doc.metadata.get("canary") is not None:
            continue
        decision = kept[doc.id]
        rows.append({"id": doc.id, "text": doc.text, "category": doc.category, "cluster": decision["cluster_id"],
                     "repeat": decision["repeat"] if decision["repeat"] is not None else 1})
        documents += 1
        if len(rows) >= SHARD_ROWS:
            shards.append(_write_shard(tmp, len(shards), rows))
            rows = []
    if rows or not shards:
        shards.append(_write_shard(tmp, len(shards), rows))
    final = []
    for i, path in enumerate(shards):  # the HF naming: train-<index>-of-<count>
        target = path.with_name(f"train-{i:05d}-of-{len(shards):05d}.parquet")
        path.rename(target)
        final.append(target)
    (tmp / "README.md").write_text(dataset_card(recipe, arm, experiment, documents), encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return {"documents": documents, "shards": len(final), "folder": str(out)}


def _write_shard(folder: Path, index: int, rows: list[dict[str, Any]]) -> Path:
    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("category", pa.string()), ("cluster", pa.string()),
                        ("repeat", pa.int32())])
    path = folder / "data" / f"part-{index:05d}.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, compression="zstd")
    return path


def dataset_card(recipe: dict[str, Any], arm: str, experiment: str, documents: int) -> str:
    header = {"configs": [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*.parquet"}]}],
              "tags": ["corpuslab", f"recipe:{recipe.get('name')}"]}
    return ("---\n" + yaml.safe_dump(header, sort_keys=False) + "---\n\n"
            f"# {experiment} / {arm}\n\n"
            f"The train split of corpuslab experiment `{experiment}` as curated by arm `{arm}`: {documents} documents "
            f"(canaries left out). Columns: id, text, category, cluster (the recipe's cluster id, when it has one), "
            f"repeat (times the arm trains on the document per pass).\n\n"
            "## Recipe\n\n```json\n" + json.dumps(recipe, indent=2, default=str) + "\n```\n")
