"""The ingest renames a repeated id '<id>#<n>' (counting renames), exactly as it did with a set of the ids."""

import json

import corpuslab
from corpuslab.experiment import Experiment
from corpuslab.shards import read_documents, shard_paths
from tests.conftest import TINY


def test_repeated_ids_are_renamed_in_order(tmp_path):
    ids = ["a", "b", "a", "c", "b", "a#1", "a", "d"]  # "a#1" repeats the first rename
    records = [{"id": doc_id, "text": f"document {k} says something about item {doc_id}"} for k, doc_id in enumerate(ids)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    cfg = corpuslab.load_config(overrides=[*TINY, f"output_dir={tmp_path / 'out'}", "dataset.source=local",
                                           f"dataset.local={{paths: [{tmp_path / 'in.jsonl'}], id_field: id}}"])
    logged = []
    experiment = Experiment(cfg, logged.append)
    try:
        (tmp_path / "work").mkdir()
        info = experiment._build_ingest(tmp_path / "work")
    finally:
        experiment.close()
    written = [doc.id for doc in read_documents(shard_paths(tmp_path / "work" / "docs"), columns=["id"])]
    assert written == ["a", "b", "a#1", "c", "b#2", "a#1#3", "a#4", "d"]
    assert info["renamed_duplicate_ids"] == 4 and any("4 documents repeated an earlier id" in line for line in logged)
