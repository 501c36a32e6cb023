"""Reliability figures for the README: crash points, malformed inputs, input changes, a full disk in each
writer, random configs. Every case is a run of the CLI in a process of its own (its own process group, so a
kill reaches its workers too), checked from outside: exit code, stderr, the files it left.

    python benchmarks/reliability.py [--jobs 2] [--fresh] [--quick] [--only SECTION ...] [--random-configs 2000]

By default the runs are forked from a server that imported corpuslab once (benchmarks/reliability_forkserver.py)
and call the same `corpuslab.cli.main` that `python -m corpuslab.cli` calls: a fresh interpreter spends seconds
importing torch and transformers, about 150 times here. `--fresh` starts every run as `python -m corpuslab.cli`
(several times slower on a loaded 2-core machine). `--jobs` cases run at the same time, each run with one
torch thread.

1. Crash points: a tiny experiment is SIGKILLed when its log reaches each marker (every stage, several
   training steps), then rerun; the rerun's report must equal an uninterrupted run's (timings and paths aside;
   floats to 1e-6 relative or 1e-5 absolute, see `corpuslab.report.build.reports_match`), and no stage folder
   may exist without its manifest at the moment of the kill. Also: Ctrl-C (SIGINT) ends quietly, and a
   changed-config rerun killed after ingest leaves report.json and config.yaml describing one run.
2. Malformed inputs: each class is a tiny generated input. Under `on_bad_input: skip` (one run over a folder
   holding all of them) each must be counted in bad_input.json with its file (and line where there is one)
   and every good record kept; under `stop` (one run per class) each must stop with a one-paragraph message
   naming the file (and line). Classes that are valid input (UTF-16/32 with a byte order mark) or
   warning-only (empty file, empty or over-long document, a file of another format) must behave the same
   under both policies. Path and config mistakes (unreadable file, missing path, duplicate YAML keys, task
   files, checkpoints) must stop with a message naming the file or key, before the first stage when
   preflight can tell. Never a traceback.
3. Input changes: edit, add, delete an input file between runs; the next report counts the new documents
   and the log names the file; a `touch` that changes no byte reuses the ingest.
4. Disk full: a small tmpfs fills up just as each writer starts (benchmarks/reliability_diskfull.py). The run
   must stop with a one-paragraph message naming the stage or file, leave nothing that looks complete but is
   not (every stage folder has its manifest, every checkpoint loads, report.json and config.yaml describe one
   run), and after the space is freed the rerun must finish with the report of an uninterrupted run.
5. Random configs: random override sets; each must load, or stop with a ConfigError naming a key.

Prints a summary table (section, case, expected, outcome, result) and exits non-zero on any failure.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import gzip
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
import zstandard

HERE = Path(__file__).resolve().parent
TINY = [
    "experiment=tiny", "dataset.synthetic.num_docs=150", "dataset.synthetic.words_per_doc=40", "tokenizer.vocab_size=320",
    "model.n_layer=1", "model.n_head=2", "model.n_embd=32", "model.context=64", "training.chunk_len=32",
    "training.batch_size=8", "training.max_train_tokens=null", "training.max_steps=16", "training.warmup_steps=2",
    "training.save_every=2", "training.eval_interval=8", "training.log_interval=1", "canaries.count=4",
    "canaries.num_candidates=20", "evaluation.max_tokens=3000", "evaluation.tasks={synthetic_cloze: 8, synthetic_choice: 8}",
]
MARKERS = [
    "[ingest] started", "[split] started", "[canaries] started", "[decontaminate] started", "[tokenizer] started",
    "[tokens] started", "[curate exact] started", "[curate near] started", "[pack near] started",
    "step 1/16", "step 3/16", "step 7/16", "step 9/16", "step 15/16", "[evaluate no_dedup] started",
    "[evaluate near] started", "report:",
]
# One arm (near: the decision table drops documents), for the disk-full cases.
DISK = [*TINY, "experiment=disk", "runs=[{name: near, recipe: near}]"]
DISK_CHANGED = [*DISK, "evaluation.max_tokens=2500"]  # evaluate and report again, reuse the rest
# Subprocess environment: one torch thread per run, so parallel cases do not fight over the cores and a
# rerun reduces floats in the order the reference did; never the network.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
       "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "MKL_DYNAMIC": "FALSE", "OMP_DYNAMIC": "FALSE",
       "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))}
TIMEOUT = 600


# ------------------------------------------------------------------ cases and the summary table


@dataclass
class Case:
    section: str
    name: str
    expected: str
    outcome: str
    ok: bool | None  # None: skipped (cannot be set up here)
    detail: str = ""  # what failed, shown under the table
    message: str = ""  # the run's last message, printed with the case (disk full)


_print_lock = threading.Lock()


def report_case(case: Case) -> Case:
    mark = {True: "pass", False: "FAIL", None: "skip"}[case.ok]
    with _print_lock:
        print(f"  [{case.section}] {case.name}: {mark} ({case.outcome})", flush=True)
        if case.message:
            print(f"      {case.message[:600]}", flush=True)
        if case.ok is False and case.detail:
            print("      " + case.detail.replace("\n", "\n      ")[:1500], flush=True)
    return case


def summary_table(cases: list[Case]) -> str:
    rows = [("section", "case", "expected", "outcome", "result")]
    rows += [(c.section, c.name, c.expected, c.outcome, {True: "pass", False: "FAIL", None: "skip"}[c.ok]) for c in cases]
    widths = [min(max(len(r[i]) for r in rows), cap) for i, cap in enumerate((10, 36, 46, 56, 6))]

    def cut(text: str, width: int) -> str:
        return text if len(text) <= width else text[: width - 1] + "…"

    lines = ["  ".join(cut(cell, w).ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ------------------------------------------------------------------ running the CLI


@dataclass
class Done:
    returncode: int
    stderr: str
    seconds: float


def corpuslab(*args: str) -> list[str]:
    return [sys.executable, "-m", "corpuslab.cli", *args]


class Proc:
    """A started CLI run: a fresh interpreter, or a child of the fork server. Its own process group either way."""

    def __init__(self, pid: int, stderr_path: Path, popen: subprocess.Popen | None = None,
                 state: dict | None = None):
        self.pid, self.stderr_path, self._popen, self._state = pid, stderr_path, popen, state

    def poll(self) -> int | None:
        return self._popen.poll() if self._popen is not None else self._state.get("rc")

    def wait(self, timeout: float | None = None) -> int:
        if self._popen is not None:
            return self._popen.wait(timeout)
        if not self._state["exited"].wait(timeout):
            raise subprocess.TimeoutExpired("corpuslab", timeout)
        return self._state["rc"]

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""


class Runner:
    """Starts CLI runs. `fresh`: every run is `python -m corpuslab.cli` (the driver script for disk-full cases);
    otherwise a fork server that imported corpuslab once forks a child per run (reliability_forkserver.py),
    which saves seconds of imports per case and runs the same `corpuslab.cli.main`."""

    def __init__(self, logs: Path, fresh: bool):
        self.logs, self.fresh = logs, fresh
        logs.mkdir(parents=True, exist_ok=True)
        self._count = 0
        self._lock = threading.Lock()
        self._states: dict[int, dict] = {}
        self._server: subprocess.Popen | None = None
        if not fresh:
            self._server = subprocess.Popen([sys.executable, str(HERE / "reliability_forkserver.py")], stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, env=ENV, text=True, bufsize=1)
            threading.Thread(target=self._read_replies, daemon=True).start()

    def _read_replies(self) -> None:
        for line in self._server.stdout:
            reply = json.loads(line)
            with self._lock:
                state = self._states[reply["id"]]
            if "pid" in reply:
                state["pid"] = reply["pid"]
                state["forked"].set()
            if "rc" in reply:
                state["rc"] = reply["rc"]
                state["exited"].set()

    def launch(self, args: list[str], env: dict[str, str] | None = None, prefix: tuple[str, ...] = (),
               writer: str | None = None) -> Proc:
        with self._lock:
            self._count += 1
            number = self._count
        stderr_path = self.logs / f"{number}.stderr"
        env = dict(env or ENV)
        if self.fresh or prefix:
            script = [sys.executable, str(HERE / "reliability_diskfull.py")] if writer else corpuslab()
            if writer:
                env["RELIABILITY_WRITER"] = writer
            with open(stderr_path, "w") as stderr:
                popen = subprocess.Popen([*prefix, *script, *args], stdout=subprocess.DEVNULL, stderr=stderr, env=env,
                                         start_new_session=True)
            return Proc(popen.pid, stderr_path, popen=popen)
        state = {"forked": threading.Event(), "exited": threading.Event()}
        with self._lock:
            self._states[number] = state
            self._server.stdin.write(json.dumps({"id": number, "argv": args, "env": env, "writer": writer,
                                                 "stdout": os.devnull, "stderr": str(stderr_path)}) + "\n")
            self._server.stdin.flush()
        if not state["forked"].wait(120):
            raise RuntimeError("the fork server did not answer")
        return Proc(state["pid"], stderr_path, state=state)

    def close(self) -> None:
        if self._server is not None:
            self._server.stdin.close()
            self._server.wait(timeout=120)


RUNNER: Runner | None = None


def cli(*args: str, prefix: tuple[str, ...] = (), env: dict[str, str] | None = None, timeout: int = TIMEOUT,
        writer: str | None = None) -> Done:
    """Run the CLI and keep its stderr; a hang is a failure."""
    start = time.time()
    proc = RUNNER.launch(list(args), env=env, prefix=prefix, writer=writer)
    try:
        rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.signal(signal.SIGKILL)
        proc.wait(60)
        return Done(-1, proc.stderr() + f"\n[benchmark: timed out after {timeout}s]", time.time() - start)
    return Done(rc, proc.stderr(), time.time() - start)


_FINAL = re.compile(r"^corpuslab: (error|unexpected error|interrupted)", re.MULTILINE)


def final_message(stderr: str) -> tuple[str, str]:
    """(kind, message) of how a run ended: kind is 'traceback', 'error' (a CorpuslabError, the clean case),
    'unexpected' (the CLI's one paragraph for an error nobody anticipated), 'interrupted' or 'none'."""
    if "Traceback (most recent call last)" in stderr:
        start = stderr.find("Traceback (most recent call last)")
        return "traceback", stderr[start:].strip()
    matches = list(_FINAL.finditer(stderr))
    if not matches:
        return "none", stderr.strip()[-400:]
    last = matches[-1]
    return {"error": "error", "unexpected error": "unexpected", "interrupted": "interrupted"}[last.group(1)], stderr[last.start():].strip()


def one_paragraph(message: str) -> bool:
    return "\n\n" not in message.strip()


def check_stop(done: Done, names: list[str], rc: int = 2) -> tuple[bool, str, str]:
    """(ok, outcome, detail) for a run that must stop with one paragraph naming every string in `names`."""
    kind, message = final_message(done.stderr)
    missing = [name for name in names if name not in message]
    if kind == "error" and done.returncode == rc and one_paragraph(message) and not missing:
        return True, f"stopped, message names {', '.join(names)}", ""
    if kind == "traceback":
        return False, "TRACEBACK", message[-2500:]
    if kind == "unexpected":
        return False, "'unexpected error' paragraph", message
    if kind == "none":
        return False, f"exit {done.returncode}, no error message", done.stderr[-1500:]
    return False, f"exit {done.returncode}; message misses {missing}" if missing else f"exit {done.returncode}", message


def no_traceback(done: Done) -> bool:
    return "Traceback (most recent call last)" not in done.stderr


def comparable(path: Path) -> dict:
    from corpuslab.report.build import reproducible_part

    return reproducible_part(json.loads(path.read_text()))


def same_report(path: Path, expected: dict) -> list[str]:
    from corpuslab.report.build import reports_match

    if not path.exists():
        return [f"{path} missing"]
    return reports_match(comparable(path), expected)


def incomplete_stage_folders(stages: Path) -> list[str]:
    """Stage folders that look complete (a final name) without a readable manifest."""
    bad = []
    for folder in sorted(stages.glob("*")) if stages.exists() else []:
        if not folder.is_dir() or folder.name.startswith(".") or folder.name.endswith(".partial"):
            continue
        try:
            json.loads((folder / "manifest.json").read_text())
        except (OSError, ValueError):
            bad.append(folder.name)
    return bad


# ------------------------------------------------------------------ 1. crash points


def kill_at(out: Path, marker: str, args: list[str], sig: int = signal.SIGKILL) -> tuple[bool, list[str], str, int | None]:
    """Start a run, signal its process group when `marker` appears in its log (past what the log held);
    (signalled, stage folders without a manifest at that moment, stderr, exit code)."""
    log = out / args_experiment(args) / "run.log"
    seen = log.read_text() if log.exists() else ""
    proc = RUNNER.launch(["run", f"output_dir={out}", *args])
    deadline = time.time() + TIMEOUT
    signalled = False
    half_done: list[str] = []
    while proc.poll() is None and time.time() < deadline:
        if log.exists() and marker in log.read_text()[len(seen):]:
            proc.signal(sig)
            if sig == signal.SIGKILL:
                half_done = incomplete_stage_folders(out / args_experiment(args) / "stages")
            signalled = True
            break
        time.sleep(0.01)
    try:
        rc = proc.wait(120)
    except subprocess.TimeoutExpired:
        proc.signal(signal.SIGKILL)
        rc = proc.wait(60)
    return signalled, half_done, proc.stderr(), rc


def args_experiment(args: list[str]) -> str:
    return [a.split("=", 1)[1] for a in args if a.startswith("experiment=")][-1]


def reference_run(out: Path, args: list[str]) -> dict:
    done = cli("run", f"output_dir={out}", *args)
    if done.returncode != 0:
        raise RuntimeError(f"reference run failed:\n{done.stderr[-3000:]}")
    return comparable(out / args_experiment(args) / "report.json")


def crash_case(tmp: Path, index: int, marker: str, expected: dict) -> Case:
    out = tmp / f"kill{index}"
    killed, half_done, _, _ = kill_at(out, marker, TINY)
    done = cli("run", f"output_dir={out}", *TINY)
    differences = same_report(out / "tiny" / "report.json", expected) if done.returncode == 0 else ["rerun failed"]
    ok = killed and not half_done and not differences and no_traceback(done)
    outcome = (f"killed={killed}, incomplete folders={len(half_done)}, "
               + ("same report" if not differences else f"{len(differences)} report differences"))
    return Case("crash", f"kill at {marker!r}", "rerun gives the uninterrupted report", outcome, ok,
                "; ".join(differences[:5]) + (done.stderr[-1500:] if done.returncode else ""))


def interrupt_case(tmp: Path, expected: dict) -> Case:
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) in training: one quiet line, exit 130."""
    out = tmp / "sigint"
    signalled, _, stderr, rc = kill_at(out, "step 7/16", TINY, sig=signal.SIGINT)
    kind, message = final_message(stderr)
    quiet = signalled and kind == "interrupted" and one_paragraph(message) and rc == 130
    done = cli("run", f"output_dir={out}", *TINY)
    differences = same_report(out / "tiny" / "report.json", expected) if done.returncode == 0 else ["rerun failed"]
    return Case("crash", "Ctrl-C in training", "one quiet line, no traceback; rerun same report",
                f"{kind} message, exit {rc}" + (", same report" if not differences else f", {len(differences)} differences"),
                quiet and not differences, message[-1500:] + "; ".join(differences[:5]))


def changed_config_kill_case(tmp: Path, reference_out: Path) -> Case:
    """A rerun with another corpus size, killed once its ingest finished: report.json and config.yaml must
    still be the pair of the finished run."""
    out = tmp / "changed-config"
    shutil.copytree(reference_out, out, symlinks=True)
    killed, _, _, _ = kill_at(out, "[ingest] finished", [*TINY, "dataset.synthetic.num_docs=160"])
    root = out / "tiny"
    report = json.loads((root / "report.json").read_text())
    config = yaml.safe_load((root / "config.yaml").read_text())
    consistent = report["config"] == config and config["dataset"]["synthetic"]["num_docs"] == 150
    return Case("crash", "changed-config rerun killed after ingest", "report.json and config.yaml: one run",
                f"killed={killed}, pair {'consistent' if consistent else 'INCONSISTENT'}", killed and consistent)


class _Hostile:
    """A pickle that runs a shell command when loaded by an unpickler that allows it (weights_only must not)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _replace_states(partial: Path, data: Callable[[bytes], bytes], which: Callable[[Path], bool]) -> list[str]:
    """Replace trainer_state.pt in the chosen checkpoint folders by a new file (step-N snapshots hard-link last/'s
    files, so writing in place would damage them all)."""
    changed = []
    for state in sorted(partial.glob("*/trainer_state.pt")):
        if which(state.parent):
            new = state.with_name("trainer_state.pt.new")
            new.write_bytes(data(state.read_bytes()))
            os.replace(new, state)
            changed.append(state.parent.name)
    return changed


def damaged_state_cases(tmp: Path, expected: dict) -> list[Case]:
    """Kill in training, damage the saved trainer state, rerun: a truncated last/ falls back to an older save
    and finishes with the uninterrupted report; hostile pickles in every save stop the run with one paragraph
    naming the folder, and never run."""
    import pickle

    cases = []
    out = tmp / "truncated-state"
    killed, _, _, _ = kill_at(out, "step 9/16", TINY)
    (partial,) = (out / "tiny" / "stages").glob("train-*.partial")
    damaged = _replace_states(partial, lambda data: data[: len(data) // 2], lambda folder: folder.name == "last")
    done = cli("run", f"output_dir={out}", *TINY)
    differences = same_report(out / "tiny" / "report.json", expected) if done.returncode == 0 else ["rerun failed"]
    fell_back = "could not load the saved state in last" in done.stderr
    cases.append(report_case(Case("crash", "truncated last/trainer_state.pt", "falls back to an older save; same report",
                                  f"killed={killed}, damaged {damaged}, fell back={fell_back}, "
                                  + ("same report" if not differences else f"{len(differences)} differences"),
                                  killed and bool(damaged) and fell_back and not differences and no_traceback(done),
                                  "; ".join(differences[:5]) + done.stderr[-1500:])))
    out = tmp / "hostile-state"
    marker = tmp / "hostile-pickle-ran"
    killed, _, _, _ = kill_at(out, "step 9/16", TINY)
    (partial,) = (out / "tiny" / "stages").glob("train-*.partial")
    damaged = _replace_states(partial, lambda data: pickle.dumps(_Hostile(marker)), lambda folder: True)
    done = cli("run", f"output_dir={out}", *TINY)
    ok, outcome, detail = check_stop(done, [partial.name, "resume=never"])
    ran = marker.exists()
    cases.append(report_case(Case("crash", "hostile pickle in every trainer_state.pt", "stops naming the folder; never runs it",
                                  outcome + f"; replaced {len(damaged)}; pickle ran: {ran}", ok and damaged and not ran, detail)))
    return cases


# ------------------------------------------------------------------ 2. malformed inputs


def _lines(*records: Any) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in records)


def _good(tag: str, count: int = 2) -> list[dict]:
    return [{"text": f"good document {tag} number {i} " + "plain words " * 12, "id": f"good-{tag}-{i}"} for i in range(count)]


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def _parquet(folder: Path, name: str, table: pa.Table) -> Path:
    pq.write_table(table, folder / name)
    return folder / name


def _symlink(folder: Path, name: str, target: str) -> Path:
    (folder / name).symlink_to(target)
    return folder / name


def _fifo(folder: Path, name: str) -> Path:
    os.mkfifo(folder / name)
    return folder / name


_RNG = random.Random(13)
BINARY = bytes(_RNG.randrange(256) for _ in range(4000))
UTF_TEXT = "Grüße aus Köln: naïve café, ½ € — ünïcödé text that must survive decoding intact. " * 3
LONG_JSONL = b"".join(json.dumps({"text": f"bulk document {i} " + " ".join(
    random.Random(i).choice(["alpha", "beta", "gamma", "delta", "river", "stone", "cloud", "field", "north", "amber"])
    for _ in range(40)), "id": f"bulk-{i}"}).encode() + b"\n" for i in range(120))


@dataclass
class Malformed:
    """One class of bad input: `build(folder)` writes it and returns the path that must be named."""

    name: str
    build: Callable[[Path], Path]
    reason: str | None  # the bad_input.json reason under skip; None: valid input, checked by `check`
    line: int | None = None  # the line (or row) the example must name; -1: some line
    stops: bool = True  # under stop the run stops naming it; False: same outcome under both policies
    good: list[str] = field(default_factory=list)  # ids of good records in the file that must be kept
    check: Callable[[dict[str, str], Path], str | None] | None = None  # (docs by id, the path) -> problem
    detail_has: str | None = None  # what the bad_input.json example must say (a hint)


def _decoded(text: str) -> Callable[[dict[str, str], Path], str | None]:
    def check(docs: dict[str, str], path: Path) -> str | None:
        found = [doc for doc_id, doc in docs.items() if doc_id.endswith(path.name)]
        return None if found == [text] else f"expected one document with the original text, got {[d[:40] for d in found]}"

    return check


def _renamed(docs: dict[str, str], path: Path) -> str | None:
    return None if "dup-1#1" in docs and "dup-1" in docs else "duplicate id not renamed '<id>#<n>'"


def malformed_classes() -> list[Malformed]:
    g = _good
    ids = lambda tag, n=2: [r["id"] for r in g(tag, n)]  # noqa: E731
    return [
        Malformed("invalid UTF-8 bytes", lambda d: _write(d, "latin1.jsonl", _lines(*g("u8"), b'{"text": "caf\xe9 au lait ' + b"word " * 20 + b'", "id": "u8-bad"}')),  # noqa: E501
                  "non_utf8_replaced", 3, good=ids("u8")),
        Malformed("lone surrogate escape", lambda d: _write(d, "surrogate.jsonl", _lines(*g("sur"), b'{"text": "broken \\ud800 pair ' + b"word " * 20 + b'", "id": "sur-bad"}')),  # noqa: E501
                  "non_utf8_replaced", 3, good=ids("sur")),
        Malformed("UTF-16 LE with BOM", lambda d: _write(d, "utf16le.txt", codecs.BOM_UTF16_LE + UTF_TEXT.encode("utf-16-le")),
                  None, stops=False, check=_decoded(UTF_TEXT)),
        Malformed("UTF-16 BE with BOM", lambda d: _write(d, "utf16be.txt", codecs.BOM_UTF16_BE + UTF_TEXT.encode("utf-16-be")),
                  None, stops=False, check=_decoded(UTF_TEXT)),
        Malformed("UTF-32 LE with BOM", lambda d: _write(d, "utf32le.txt", codecs.BOM_UTF32_LE + UTF_TEXT.encode("utf-32-le")),
                  None, stops=False, check=_decoded(UTF_TEXT)),
        Malformed("UTF-16 without BOM", lambda d: _write(d, "utf16-nobom.txt", UTF_TEXT.encode("utf-16-le") * 3), "binary_content"),
        Malformed("binary file named .txt", lambda d: _write(d, "image.txt", b"\x89PNG\r\n\x1a\n" + BINARY), "binary_content"),
        Malformed("NUL-heavy document", lambda d: _write(d, "nul.jsonl", _lines(*g("nul"), {"text": "word\u0000" * 60, "id": "nul-bad"})),
                  "binary_content", 3, good=ids("nul")),
        Malformed("empty file", lambda d: _write(d, "empty.jsonl", b""), "empty_file", stops=False),
        Malformed("empty document", lambda d: _write(d, "emptydoc.jsonl", _lines(*g("ed"), {"text": "  \n ", "id": "ed-bad"})),
                  "empty_document", 3, stops=False, good=ids("ed")),
        Malformed("over-long document (1.1M chars)", lambda d: _write(d, "huge.jsonl", _lines(*g("huge"), {"text": "x" * 1_100_000, "id": "huge-bad"})),
                  "document_too_long", 3, stops=False, good=ids("huge")),
        Malformed("malformed JSON line", lambda d: _write(d, "broken.jsonl", _lines(*g("mj"), b'{"text": "unterminated', *g("mj2", 1))),
                  "malformed_json", 3, good=ids("mj")),
        Malformed("deeply nested JSON line", lambda d: _write(d, "nested.jsonl", _lines(*g("nest"), b"[" * 100_000)),
                  "malformed_json", 3, good=ids("nest")),
        Malformed("JSON line not an object", lambda d: _write(d, "list.jsonl", _lines(*g("lst"), [1, 2, 3])),
                  "not_a_json_object", 3, good=ids("lst")),
        Malformed("one JSON array, not lines", lambda d: _write(d, "array.json", b'[{"text": "a", "id": "arr-0"},\n {"text": "b", "id": "arr-1"}]\n'),
                  "not_json_lines", 1),
        Malformed("missing text field", lambda d: _write(d, "notext.jsonl", _lines(*g("mt"), {"body": "no text here", "id": "mt-bad"})),
                  "missing_text_field", 3, good=ids("mt")),
        Malformed("non-string text field", lambda d: _write(d, "number.jsonl", _lines(*g("ns"), {"text": 42, "id": "ns-bad"})),
                  "text_not_string", 3, good=ids("ns")),
        Malformed("missing id field", lambda d: _write(d, "noid.jsonl", _lines(*g("mi"), {"text": "a document without its id " * 3})),
                  "missing_id_field", 3, good=ids("mi")),
        Malformed("truncated .gz", lambda d: _write(d, "cut.jsonl.gz", gzip.compress(_lines(*g("gz", 300)))[:-300]),
                  "truncated_archive", -1, good=ids("gz", 5)),
        # Several frames, as `zstd -T` or concatenated shards write them: the complete frames before the cut are
        # readable (inside one frame, zstd cannot decode a block that is cut).
        Malformed("truncated .zst", lambda d: _write(d, "cut.jsonl.zst", b"".join(zstandard.ZstdCompressor().compress(_lines(*g("zst", 300)[k:k + 50]))
                                                                            for k in range(0, 300, 50))[:-200]),
                  "truncated_archive", -1, good=ids("zst", 5)),
        Malformed("not gzip, named .gz", lambda d: _write(d, "fake.jsonl.gz", BINARY), "corrupt_file", -1),
        Malformed("corrupt Parquet", lambda d: _write(d, "corrupt.parquet", b"PAR1" + BINARY), "corrupt_file"),
        Malformed("Parquet without the text column", lambda d: _parquet(d, "notext.parquet", pa.table({"id": ["pq-1"], "body": ["x"]})),
                  "wrong_schema"),
        Malformed("Parquet text column of ints", lambda d: _parquet(d, "ints.parquet", pa.table({"id": ["pqi-1"], "text": [7]})),
                  "wrong_schema"),
        Malformed("CSV with a ragged row", lambda d: _write(d, "ragged.csv", b"id,text\ncsv-0,a good row of words\ncsv-1,too,many,fields\ncsv-2,another good row\n"),  # noqa: E501
                  "malformed_csv_row", 3, good=["csv-0", "csv-2"]),
        Malformed("CSV without the text column", lambda d: _write(d, "nocol.csv", b"id,body\ncsvn-0,words\n"), "wrong_schema", 1),
        Malformed("extension-less file, format auto", lambda d: _write(d, "49960", b"From: someone\n\nA Usenet posting without an extension.\n"),
                  "other_format_file", stops=False, detail_has="format: txt"),
        Malformed("dangling symlink", lambda d: _symlink(d, "dangling.jsonl", "no-such-target.jsonl"), "dangling_symlink"),
        Malformed("symlink to itself", lambda d: _symlink(d, "self.jsonl", "self.jsonl"), "symlink_loop"),
        Malformed("symlink to its own folder", lambda d: _symlink(d, "again", "."), "symlink_loop"),
        Malformed("FIFO named .jsonl", lambda d: _fifo(d, "pipe.jsonl"), "special_file"),
        Malformed("duplicate ids", lambda d: _write(d, "dupids.jsonl", _lines({"text": "first of two " * 5, "id": "dup-1"}, {"text": "second of two " * 5, "id": "dup-1"})),  # noqa: E501
                  None, stops=False, check=_renamed),
    ]


LOCAL_BASE = ["tokenizer.vocab_size=300", "canaries.count=4", "canaries.num_candidates=20", "dataset.source=local"]


def bad_input_of(root: Path, fingerprint: str = "*") -> tuple[dict, dict[str, str], dict]:
    """(bad_input.json, documents by id, manifest) of the ingest folder with that fingerprint (the only one)."""
    (ingest,) = [p for p in (root / "stages").glob(f"ingest-{fingerprint}") if p.is_dir()]
    docs = {row["id"]: row["text"] for path in sorted((ingest / "docs").glob("*.parquet"))
            for row in pq.read_table(path, columns=["id", "text"]).to_pylist()}
    return json.loads((ingest / "bad_input.json").read_text()), docs, json.loads((ingest / "manifest.json").read_text())


def skip_policy_check(klass: Malformed, path: Path, bad: dict, docs: dict[str, str]) -> tuple[bool, str, str]:
    """Counted with its file (and line), good records kept; or, for valid input, its check."""
    problems = []
    if klass.reason is not None:
        examples = [e for e in bad["examples"].get(klass.reason, []) if Path(e["file"]).name == path.name]
        if not examples:
            problems.append(f"no {klass.reason} example for {path.name} (counts {bad['counts']})")
        elif klass.detail_has is not None and not any(klass.detail_has in e["detail"] for e in examples):
            problems.append(f"{klass.reason} for {path.name} does not say {klass.detail_has!r}")
        elif klass.line is not None:
            lines = [e["line"] for e in examples]
            if (klass.line == -1 and not any(isinstance(n, int) for n in lines)) or (klass.line != -1 and klass.line not in lines):
                problems.append(f"{klass.reason} for {path.name} at lines {lines}, expected {klass.line}")
    lost = [doc_id for doc_id in klass.good if doc_id not in docs]
    if lost:
        problems.append(f"good records lost: {lost}")
    if klass.check is not None:
        problem = klass.check(docs, path)
        if problem:
            problems.append(problem)
    where = f"{path.name}" + (f":{klass.line}" if klass.line not in (None, -1) else "")
    outcome = (f"counted as {klass.reason} at {where}" if klass.reason else "read correctly")
    return not problems, outcome if not problems else "; ".join(problems), "; ".join(problems)


def malformed_skip_run(tmp: Path, classes: list[Malformed]) -> tuple[Done, dict[str, tuple[Path, dict, dict]]]:
    """All classes in one folder, one run under skip; returns the run and each class's (path, bad, docs)."""
    data = tmp / "skip-data"
    data.mkdir()
    paths = {klass.name: klass.build(data) for klass in classes}
    _write(data, "bulk.jsonl", LONG_JSONL)
    out = tmp / "skip-out"
    done = cli("prepare", f"output_dir={out}", "experiment=bad", *LOCAL_BASE, f"dataset.local.paths=[{data}]",
               "dataset.local.id_field=id")
    return done, {name: (path, out / "bad") for name, path in paths.items()}


def malformed_cases(tmp: Path, pool: ThreadPoolExecutor) -> list[Future]:
    """Futures of Cases: the skip run's verdict per class, one stop run per class."""
    classes = malformed_classes()
    futures: list[Future] = []
    skip_future = pool.submit(malformed_skip_run, tmp, classes)

    def verdict(klass: Malformed) -> Case:
        done, built = skip_future.result()
        path, root = built[klass.name]
        expected = (f"skip: counted as {klass.reason} with file" + (" and line" if klass.line is not None else "")
                    if klass.reason else "read correctly under both policies")
        if done.returncode != 0:
            return report_case(Case("malformed", klass.name, expected, "skip run failed", False, done.stderr[-2000:]))
        bad, docs, _ = bad_input_of(root)
        ok, outcome, detail = skip_policy_check(klass, path, bad, docs)
        return report_case(Case("malformed", f"{klass.name} (skip)", expected, outcome, ok and no_traceback(done), detail))

    def stop_run(klass: Malformed) -> Case:
        folder = tmp / "stop-data" / re.sub(r"\W+", "_", klass.name)
        folder.mkdir(parents=True)
        path = klass.build(folder)
        if not klass.stops:  # warning-only or valid: the stop run must finish and count it the same way
            _write(folder, "bulk.jsonl", LONG_JSONL)
        out = tmp / "stop-out" / folder.name
        done = cli("prepare", f"output_dir={out}", "experiment=bad", *LOCAL_BASE, f"dataset.local.paths=[{folder}]",
                   "dataset.local.id_field=id", "dataset.local.on_bad_input=stop")
        if klass.stops:
            names = [path.name] + ([f"{path.name}:{klass.line}"] if klass.line not in (None, -1) else [])
            ok, outcome, detail = check_stop(done, names)
            return report_case(Case("malformed", f"{klass.name} (stop)", "stop: one paragraph naming file"
                                    + (" and line" if klass.line not in (None, -1) else ""), outcome, ok, detail))
        if done.returncode != 0:
            kind, message = final_message(done.stderr)
            return report_case(Case("malformed", f"{klass.name} (stop)", "stop: same as skip", f"stopped ({kind})", False, message))
        bad, docs, _ = bad_input_of(out / "bad")
        ok, outcome, detail = skip_policy_check(klass, path, bad, docs)
        return report_case(Case("malformed", f"{klass.name} (stop)", "stop: same as skip", outcome, ok and no_traceback(done), detail))

    for klass in classes:
        futures.append(pool.submit(verdict, klass))
        futures.append(pool.submit(stop_run, klass))
    for separate in (extensionless_with_format, unreadable_file, folder_without_readable_files, missing_path,
                     glob_without_match):
        futures.append(pool.submit(lambda f=separate: report_case(f(tmp))))
    return futures


def extensionless_with_format(tmp: Path) -> Case:
    data = tmp / "usenet" / "alt.atheism"
    data.mkdir(parents=True)
    (data / "49960").write_text("From: a@b\nSubject: test\n\nA posting without an extension, read as text.\n")
    _write(data.parent, "bulk.jsonl", LONG_JSONL)
    out = tmp / "usenet-out"
    done = cli("prepare", f"output_dir={out}", "experiment=bad", *LOCAL_BASE, f"dataset.local.paths=[{data.parent}]",
               "dataset.local.format=txt")
    if done.returncode != 0:
        kind, message = final_message(done.stderr)
        return Case("malformed", "extension-less file, format txt", "read as a document", f"stopped ({kind})", False, message)
    _, docs, _ = bad_input_of(out / "bad")
    found = [doc_id for doc_id in docs if doc_id.endswith("49960")]
    return Case("malformed", "extension-less file, format txt", "read as a document",
                f"documents with that id: {len(found)}", len(found) == 1 and no_traceback(done))


def _can_drop_root_read() -> bool:
    probe = Path(tempfile.mkdtemp()) / "probe"
    probe.write_text("x")
    probe.chmod(0)
    try:
        return subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search", "cat", str(probe)],
                              capture_output=True).returncode != 0
    except OSError:
        return False
    finally:
        shutil.rmtree(probe.parent)


def unreadable_file(tmp: Path) -> Case:
    """chmod 000. root reads anything, so as root the run is started without the capabilities that allow it."""
    data = tmp / "unreadable"
    data.mkdir()
    _write(data, "bulk.jsonl", LONG_JSONL)
    secret = _write(data, "secret.jsonl", _lines(*_good("sec")))
    secret.chmod(0)
    expected = "stops naming the file under either policy"
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:
        if not _can_drop_root_read():
            return Case("malformed", "unreadable file (chmod 000)", expected, "running as root without setpriv: not testable", None)
        prefix = ("setpriv", "--bounding-set=-dac_override,-dac_read_search")
    done = cli("prepare", f"output_dir={tmp / 'unreadable-out'}", "experiment=bad", *LOCAL_BASE,
               f"dataset.local.paths=[{data}]", "dataset.local.id_field=id", prefix=prefix)
    ok, outcome, detail = check_stop(done, ["secret.jsonl", "Permission denied"])
    return Case("malformed", "unreadable file (chmod 000)", expected, outcome, ok, detail)


def folder_without_readable_files(tmp: Path) -> Case:
    data = tmp / "nothing-readable"
    data.mkdir()
    (data / "README.md").write_text("# not data\n")
    (data / "LICENSE").write_text("MIT\n")
    done = cli("prepare", f"output_dir={tmp / 'nothing-out'}", "experiment=bad", *LOCAL_BASE, f"dataset.local.paths=[{data}]")
    ok, outcome, detail = check_stop(done, [str(data), "format: txt"])
    return Case("malformed", "folder with no readable file", "stops naming the folder, with the format hint", outcome, ok, detail)


def missing_path(tmp: Path) -> Case:
    done = cli("prepare", f"output_dir={tmp / 'missing-out'}", "experiment=bad", *LOCAL_BASE,
               f"dataset.local.paths=[{tmp / 'no-such-folder'}]")
    ok, outcome, detail = check_stop(done, ["no-such-folder", "no such file"])
    return Case("malformed", "input path that does not exist", "stops naming the path", outcome, ok, detail)


def glob_without_match(tmp: Path) -> Case:
    done = cli("prepare", f"output_dir={tmp / 'glob-out'}", "experiment=bad", *LOCAL_BASE,
               f"dataset.local.paths=['{tmp}/nowhere/*.jsonl']")
    ok, outcome, detail = check_stop(done, ["nowhere/*.jsonl"])
    return Case("malformed", "glob that matches nothing", "stops naming the glob", outcome, ok, detail)


# Config and preflight mistakes: (name, expected, files to write, argv builder, strings the message must name,
# whether the run must stop before any stage folder exists).


def config_cases(tmp: Path, pool: ThreadPoolExecutor) -> list[Future]:
    root = tmp / "config"
    root.mkdir()
    (root / "dup.yaml").write_text("training:\n  lr: 0.001\n  batch_size: 8\n  lr: 0.002\n")
    (root / "unknown.yaml").write_text("trainng:\n  lr: 0.001\n")
    (root / "broken.yaml").write_text("training: {lr: 0.001\n")
    (root / "list.yaml").write_text("- training\n- lr\n")
    (root / "tasks.jsonl").write_text('{"goal": "g", "sol1": "a", "sol2": "b", "label": 0}\n{"goal": "unterminated\n')
    checkpoint = root / "garbage-checkpoint"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("{this is not json")
    (checkpoint / "model.safetensors").write_bytes(b"garbage")
    bad_weights = root / "garbage-weights-checkpoint"
    bad_weights.mkdir()
    from transformers import GPT2Config

    GPT2Config(n_layer=1, n_head=2, n_embd=32, n_positions=64, vocab_size=320, bos_token_id=0,
               eos_token_id=0).to_json_file(bad_weights / "config.json")
    (bad_weights / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
    empty_checkpoint = root / "no-config-checkpoint"
    empty_checkpoint.mkdir()
    (empty_checkpoint / "model.safetensors").write_bytes(b"garbage")

    def out(name: str) -> str:
        return f"output_dir={root / ('out-' + name)}"

    specs: list[tuple[str, str, list[str], list[str], bool]] = [
        ("duplicate YAML keys", "names the key, the file and both lines",
         ["run", "--config", str(root / "dup.yaml"), out("dup"), *TINY], ["'lr'", "dup.yaml", "2", "4"], True),
        ("unknown key in a config file", "names the key", ["run", "--config", str(root / "unknown.yaml"), out("unk"), *TINY],
         ["trainng"], True),
        ("unknown key in an override", "names the key", ["run", out("unk2"), *TINY, "training.nope=1"], ["training.nope"], True),
        ("config file that is not YAML", "names the file and line", ["run", "--config", str(root / "broken.yaml"), out("broken"), *TINY],
         ["broken.yaml"], True),
        ("config file that is a list", "names the file", ["run", "--config", str(root / "list.yaml"), out("list"), *TINY],
         ["list.yaml", "mapping"], True),
        ("config file missing", "names the file", ["run", "--config", str(root / "nope.yaml"), out("nope"), *TINY],
         ["nope.yaml"], True),
        ("task file missing", "names the key and file before any stage",
         ["run", out("taskmissing"), *TINY, "evaluation.tasks={piqa: 2}", f"evaluation.task_files={{piqa: {root / 'none.jsonl'}}}"],
         ["evaluation.task_files.piqa", "none.jsonl"], True),
        ("task file malformed", "names the file and line before any stage",
         ["run", out("taskbad"), *TINY, "evaluation.tasks={piqa: 2}", f"evaluation.task_files={{piqa: {root / 'tasks.jsonl'}}}"],
         ["tasks.jsonl:2"], True),
        ("pretrained tokenizer missing", "names the tokenizer before any stage",
         ["run", out("tok"), *TINY, "tokenizer.kind=pretrained", f"tokenizer.name={root / 'no-tokenizer'}"],
         ["no-tokenizer"], True),
        ("evaluate --checkpoint missing", "names the checkpoint before any stage",
         ["evaluate", out("ckmissing"), *TINY, "--checkpoint", str(root / "no-model")], ["no-model"], True),
        ("evaluate --checkpoint without config.json", "names the folder before any stage",
         ["evaluate", out("cknoconfig"), *TINY, "--checkpoint", str(empty_checkpoint)], ["no-config-checkpoint", "config.json"], True),
        ("evaluate --checkpoint, garbage config.json", "a clean message naming config.json (finding if not)",
         ["evaluate", out("ckgarbage"), *TINY, "--checkpoint", str(checkpoint)], ["garbage-checkpoint"], False),
        ("evaluate --checkpoint, garbage weights", "a clean message naming the folder (finding if not)",
         ["evaluate", out("ckweights"), *TINY, "--checkpoint", str(bad_weights)], ["garbage-weights-checkpoint"], False),
    ]

    def one(name: str, expected: str, argv: list[str], names: list[str], before_stages: bool) -> Case:
        done = cli(*argv)
        ok, outcome, detail = check_stop(done, names)
        output = Path(next(a.split("=", 1)[1] for a in argv if a.startswith("output_dir=")))
        stages = [p.name for p in output.glob("*/stages/*")]
        if before_stages and stages:
            ok, outcome = False, outcome + f"; but stage folders were made first: {stages}"
        return report_case(Case("config", name, expected, outcome, ok, detail))

    def debug_flag() -> Case:
        plain = cli("run", out("debug"), *TINY, "training.nope=1")
        debug = cli("--debug", "run", out("debug"), *TINY, "training.nope=1")
        ok = no_traceback(plain) and not no_traceback(debug)
        return report_case(Case("config", "--debug on a config error", "traceback only with --debug",
                                f"without: {'no traceback' if no_traceback(plain) else 'traceback'}; with: "
                                f"{'traceback' if not no_traceback(debug) else 'no traceback'}", ok))

    return [pool.submit(one, *spec) for spec in specs] + [pool.submit(debug_flag)]


# ------------------------------------------------------------------ 3. input changes

WORDS = ["alpha", "beta", "gamma", "delta", "river", "stone", "cloud", "field", "north", "amber", "quiet", "lamp",
         "harbor", "maple", "copper", "signal", "meadow", "ember", "orbit", "velvet"]
LOCAL_RUN = [
    "experiment=local", *LOCAL_BASE, "model.n_layer=1", "model.n_head=2", "model.n_embd=32", "model.context=64",
    "training.chunk_len=32", "training.batch_size=8", "training.max_train_tokens=null", "training.max_steps=4",
    "training.warmup_steps=1", "training.save_every=null", "training.eval_interval=4", "evaluation.max_tokens=2000",
    "runs=[{name: all, recipe: none}]",
]


def _docs_file(path: Path, tag: str, count: int) -> None:
    rng = random.Random(tag)
    path.write_text("".join(json.dumps({"text": f"{tag} {i} " + " ".join(rng.choice(WORDS) for _ in range(30))}) + "\n"
                            for i in range(count)))


def input_change_cases(tmp: Path) -> list[Case]:
    data = tmp / "changing"
    data.mkdir()
    for name, count in (("a.jsonl", 40), ("b.jsonl", 40), ("c.jsonl", 40)):
        _docs_file(data / name, name, count)
    out = tmp / "changing-out"
    args = ["run", f"output_dir={out}", *LOCAL_RUN, f"dataset.local.paths=[{data}]"]
    cases = []

    def run(label: str) -> tuple[Done, dict | None]:
        done = cli(*args)
        path = out / "local" / "report.json"
        return done, json.loads(path.read_text()) if done.returncode == 0 else None

    done, report = run("first")
    if report is None:
        return [report_case(Case("inputs", "first run", "finishes", "failed", False, done.stderr[-2000:]))]
    documents = report["corpus"]["ingest"]["documents"]
    tasks = report["arms"]["all"]["replicates"][0]["metrics"].get("tasks") or {}
    cases.append(report_case(Case("inputs", "no synthetic tasks on a local corpus", "evaluation.tasks null: none",
                                  f"tasks scored: {sorted(tasks) or 'none'}", not tasks)))

    def step(name: str, change: Callable[[], None], expect_docs: int, log_line: str | None, text: str | None) -> None:
        change()
        done, report = run(name)
        if report is None:
            cases.append(report_case(Case("inputs", name, "rerun reflects it", "rerun failed", False, done.stderr[-2000:])))
            return
        got = report["corpus"]["ingest"]["documents"]
        problems = []
        if got != expect_docs:
            problems.append(f"documents {got}, expected {expect_docs}")
        if log_line is None:
            if "[ingest] reused" not in done.stderr:
                problems.append("ingest was not reused")
        elif log_line not in done.stderr:
            problems.append(f"log does not say {log_line!r}")
        if text is not None:
            _, docs, _ = bad_input_of(out / "local", report["corpus"]["ingest"]["fingerprint"])
            if not any(text in doc for doc in docs.values()):
                problems.append(f"no document holds {text!r}")
        expected = f"documents {expect_docs}, " + (f"log names '{log_line}'" if log_line else "ingest reused")
        cases.append(report_case(Case("inputs", name, expected, "as expected" if not problems else "; ".join(problems),
                                      not problems and no_traceback(done))))

    def edit() -> None:
        lines = (data / "b.jsonl").read_text().splitlines(keepends=True)
        lines[0] = json.dumps({"text": "EDITED document " + " ".join(WORDS)}) + "\n"
        (data / "b.jsonl").write_text("".join(lines) + json.dumps({"text": "one more line " + " ".join(WORDS[:10])}) + "\n")

    step("edit a file", edit, documents + 1, f"changed: {data / 'b.jsonl'}", "EDITED document")
    step("add a file", lambda: _docs_file(data / "d.jsonl", "d.jsonl", 7), documents + 8, f"added: {data / 'd.jsonl'}", "d.jsonl 6")
    step("delete a file", lambda: (data / "a.jsonl").unlink(), documents + 8 - 40, f"deleted: {data / 'a.jsonl'}", None)
    step("touch a file (same bytes)", lambda: os.utime(data / "c.jsonl", (time.time() + 5, time.time() + 5)),
         documents + 8 - 40, None, None)
    return cases


# ------------------------------------------------------------------ 4. disk full

# writer -> (what it writes, the first stage it is in: stages from there on are rebuilt; None: a changed-config
# rerun on a finished experiment, which rebuilds evaluation and the report)
DISK_WRITERS: dict[str, tuple[str, str | None]] = {
    "disk_full_at_start": ("disk already full when the run starts", "ingest"),
    "ingest_shards": ("ingest: Parquet shards (ShardWriter)", "ingest"),
    "ingest_bad_input_json": ("ingest: bad_input.json (atomic JSON)", "ingest"),
    "split_manifest": ("split: manifest.json (atomic JSON)", "split"),
    "tokenizer_files": ("tokenizer: save_pretrained", "tokenizer"),
    "token_stream": ("tokens: token stream .bin/.idx/.meta", "tokens"),
    "curate_decisions": ("curate: decisions.parquet (DecisionWriter)", "curate"),
    "checkpoint_safetensors": ("train: periodic save, model.safetensors", "train"),
    "checkpoint_torch_save": ("train: periodic save, trainer_state.pt (torch.save)", "train"),
    "final_checkpoint": ("train: final/ model.safetensors", "train"),
    "evaluate_metrics_json": ("evaluate: metrics.json (atomic JSON)", "evaluate"),
    "report_json": ("report.json (atomic JSON)", None),
    "summary_tsv": ("summary.tsv (atomic TSV)", None),
    "report_html": ("report.html (atomic HTML)", None),
    "config_yaml": ("config.yaml (atomic YAML)", None),
}
STAGE_ORDER = ["ingest", "split", "canaries", "decontaminate", "tokenizer", "tokens", "curate", "pack", "train", "evaluate"]
REPORT_FILES = ("report.json", "summary.tsv", "report.html", "config.yaml")


def tmpfs_available() -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    probe = Path(tempfile.mkdtemp(prefix="reliability-probe-"))
    try:
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)], capture_output=True).returncode:
            return False
        subprocess.run(["umount", str(probe)], capture_output=True)
        return True
    finally:
        shutil.rmtree(probe, ignore_errors=True)


@contextlib.contextmanager
def small_disk(folder: Path, size: str, use_tmpfs: bool) -> Iterator[Path]:
    folder.mkdir(parents=True)
    if use_tmpfs:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        if use_tmpfs:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def unloadable_artifacts(root: Path) -> list[str]:
    """What looks complete but does not load: stage folders without a manifest, checkpoints (last, final,
    best, step-N) whose weights, config or trainer state do not load, token streams that do not open,
    report files that do not parse, and a report.json and config.yaml describing different runs."""
    import torch
    from safetensors import safe_open

    from corpuslab.tokens.stream import TokenStream

    problems = [f"{name}: no manifest" for name in incomplete_stage_folders(root / "stages")]
    for folder in (root / "stages").glob("train-*"):
        for checkpoint in folder.iterdir():
            if not checkpoint.is_dir() or not (checkpoint.name in ("last", "last.old", "final", "best")
                                                or re.fullmatch(r"step-\d+", checkpoint.name)):
                continue
            try:
                json.loads((checkpoint / "config.json").read_text())
                with safe_open(str(checkpoint / "model.safetensors"), "pt") as weights:
                    list(weights.keys())
                if checkpoint.name in ("last", "last.old") or checkpoint.name.startswith("step-"):
                    torch.load(checkpoint / "trainer_state.pt", map_location="cpu", weights_only=True)
            except Exception as err:  # noqa: BLE001 - any failure to load is the finding
                problems.append(f"{folder.name}/{checkpoint.name}: {type(err).__name__}: {str(err)[:120]}")
    for meta in (root / "stages").glob("*/*.meta.json"):
        if not meta.parent.name.startswith("."):
            try:
                TokenStream.open(str(meta)[: -len(".meta.json")])
            except Exception as err:  # noqa: BLE001
                problems.append(f"{meta}: {type(err).__name__}: {err}")
    report, config = root / "report.json", root / "config.yaml"
    try:
        loaded = json.loads(report.read_text()) if report.exists() else None
        yaml_config = yaml.safe_load(config.read_text()) if config.exists() else None
        if loaded is not None and yaml_config is not None and loaded["config"] != yaml_config:
            changed = sorted(k for k in loaded["config"] if loaded["config"][k] != yaml_config.get(k) and k != "output_dir")
            problems.append(f"report.json and config.yaml describe different runs (differ in {changed})")
    except ValueError as err:
        problems.append(f"report.json or config.yaml does not parse: {err}")
    html = root / "report.html"
    if html.exists() and not html.read_text().rstrip().endswith("</html>"):
        problems.append("report.html is cut short")
    return problems


def leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if ".tmp-" in p.name)


def disk_full_case(tmp: Path, writer: str, reference: tuple[Path, dict], changed: dict, use_tmpfs: bool) -> Case:
    what, first_stage = DISK_WRITERS[writer]
    expected = "one-paragraph stop naming stage/file; nothing half-written; rerun = reference report"
    if writer == "disk_full_at_start" and not use_tmpfs:
        return Case("disk full", what, expected, "needs a tmpfs (root): only a real full disk fails the first write", None)
    with small_disk(tmp / f"disk-{writer}", "64m", use_tmpfs) as disk:
        out = disk / "out"
        reference_out, reference_report = reference
        args = DISK if first_stage else DISK_CHANGED
        expected_report = reference_report if first_stage else changed
        if writer != "disk_full_at_start":
            shutil.copytree(reference_out, out, symlinks=True)
            root = out / "disk"
            if first_stage is not None:
                for folder in (root / "stages").iterdir():
                    if STAGE_ORDER.index(folder.name.lstrip(".").split("-")[0]) >= STAGE_ORDER.index(first_stage):
                        shutil.rmtree(folder)
                for name in REPORT_FILES:
                    (root / name).unlink(missing_ok=True)
        root = out / "disk"
        fired = tmp / f"fired-{writer}"
        env = {**ENV, "RELIABILITY_FIRED": str(fired)}
        if use_tmpfs:
            env["RELIABILITY_FILL"] = str(disk / "ballast")
        failed = cli("run", f"output_dir={out}", *args, env=env, writer=writer)
        names = {None: "report"}.get(first_stage, first_stage)
        names_ok = [n for n in (names, writer_file(writer)) if n]
        ok, outcome, detail = check_stop(failed, [])
        kind, message = final_message(failed.stderr)
        named = [n for n in names_ok if n in message]
        broken = unloadable_artifacts(root)
        (disk / "ballast").unlink(missing_ok=True)  # free the space
        rerun = cli("run", f"output_dir={out}", *args)
        differences = same_report(root / "report.json", expected_report) if rerun.returncode == 0 else ["rerun failed"]
        left = leftovers(root) if rerun.returncode == 0 else []
    problems = []
    if not fired.exists():
        problems.append("the writer was never reached")
    if not ok:
        problems.append(outcome)
    elif not named:
        problems.append(f"message names neither {' nor '.join(names_ok)}")
    problems += broken
    if differences:
        problems.append(f"rerun: {'; '.join(differences[:3])}")
    if left:
        problems.append(f"leftovers after the rerun: {left[:3]}")
    outcome = ("stopped naming " + ", ".join(named) + ", nothing half-written, rerun same report") if not problems else "; ".join(problems)
    return Case("disk full", what, expected, outcome, not problems,
                (message if kind != "error" or not named else "") + (rerun.stderr[-1500:] if rerun.returncode else ""),
                message=message)


def writer_file(writer: str) -> str | None:
    return {"ingest_bad_input_json": "bad_input.json", "split_manifest": "manifest.json", "curate_decisions": "decisions",
            "checkpoint_safetensors": "last", "checkpoint_torch_save": "last", "final_checkpoint": "final",
            "evaluate_metrics_json": "metrics.json", "report_json": "report.json", "summary_tsv": "summary.tsv",
            "report_html": "report.html", "config_yaml": "config.yaml", "token_stream": "train"}.get(writer)


def whole_run_small_disk(tmp: Path, reference: dict, use_tmpfs: bool) -> Case:
    """No hook: a fresh run on a 1 MiB disk runs out of space wherever it does; then the disk grows."""
    name = "whole run on a 1 MiB disk"
    expected = "stops naming the stage; after growing the disk the rerun = reference"
    if not use_tmpfs:
        return Case("disk full", name, expected, "needs root for a tmpfs", None)
    with small_disk(tmp / "disk-small", "1m", use_tmpfs) as disk:
        out = disk / "out"
        failed = cli("run", f"output_dir={out}", *DISK)
        kind, message = final_message(failed.stderr)
        ok, outcome, detail = check_stop(failed, ["stage '"])
        broken = unloadable_artifacts(out / "disk")
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        rerun = cli("run", f"output_dir={out}", *DISK)
        differences = same_report(out / "disk" / "report.json", reference) if rerun.returncode == 0 else ["rerun failed"]
    problems = ([] if ok else [outcome]) + broken + ([f"rerun: {'; '.join(differences[:3])}"] if differences else [])
    stage = re.search(r"stage '([^']+)'", message)
    return Case("disk full", name, expected,
                f"stopped in {stage.group(1) if stage else '?'}, rerun same report" if not problems else "; ".join(problems),
                not problems, detail + (rerun.stderr[-1500:] if rerun.returncode else ""), message=message)


def disk_references(tmp: Path) -> tuple[tuple[Path, dict], dict]:
    """The uninterrupted one-arm run, and the same experiment rerun with a changed evaluation setting."""
    out = tmp / "disk-reference"
    report = reference_run(out, DISK)
    changed_out = tmp / "disk-reference-changed"
    shutil.copytree(out, changed_out, symlinks=True)
    changed = reference_run(changed_out, DISK_CHANGED)
    return (out, report), changed


# ------------------------------------------------------------------ 5. random configs

KEYS = ["split.val", "split.train", "curation.minhash.threshold", "curation.minhash.num_perm", "training.chunk_len",
        "training.batch_size", "model.n_head", "model.n_embd", "tokenizer.vocab_size", "canaries.copies",
        "runs.0.recipe", "dataset.source", "training.lr", "unknown", "training.nope", "evaluation.splits", "seeds"]
VALUES = [None, True, -1, 0, 1, 3, 0.5, 1.5, 128, 100000, "x", "near", [1, 2], [], {"a": 1}, float("nan")]


def random_configs(count: int, seed: int = 0) -> Case:
    from corpuslab.config import load_config
    from corpuslab.errors import ConfigError, InputError

    rng = random.Random(seed)
    loaded = rejected = 0
    other: list[str] = []
    for _ in range(count):
        overrides = [f"{rng.choice(KEYS)}={yaml.safe_dump(rng.choice(VALUES), default_flow_style=True).split(chr(10))[0]}"
                     for _ in range(rng.randint(1, 4))]
        try:
            load_config(None, overrides)
            loaded += 1
        except (ConfigError, InputError) as err:
            if str(err):
                rejected += 1
            else:
                other.append(f"{overrides}: empty message")
        except Exception as err:  # noqa: BLE001 - the failure being counted
            other.append(f"{overrides}: {type(err).__name__}: {err}")
    return report_case(Case("configs", f"{count} random override sets", "load, or ConfigError naming the key",
                            f"{loaded} loaded, {rejected} stopped naming the key, {len(other)} other", not other,
                            "\n".join(other[:5])))


# ------------------------------------------------------------------ main


SECTIONS = ("crash", "malformed", "config", "inputs", "disk", "configs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--random-configs", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="only every fourth crash point")
    parser.add_argument("--jobs", type=int, default=2, help="cases run at the same time (default 2)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="run only these sections")
    parser.add_argument("--fresh", action="store_true",
                        help="start every run as `python -m corpuslab.cli` instead of forking a server that imported "
                             "corpuslab once (same code, several seconds of imports more per case)")
    parser.add_argument("--no-tmpfs", action="store_true",
                        help="disk full without a tmpfs even as root: the writers raise ENOSPC themselves")
    args = parser.parse_args()
    start = time.time()
    global RUNNER
    use_tmpfs = not args.no_tmpfs and tmpfs_available()
    print(f"disk full: {'a tmpfs fills up' if use_tmpfs else 'no tmpfs (not root): writers raise ENOSPC themselves'}; "
          f"{args.jobs} cases at a time; runs: {'fresh interpreters' if args.fresh else 'forked from a server'}", flush=True)
    futures: list[Future] = []
    with tempfile.TemporaryDirectory(prefix="reliability-") as tmp_name, ThreadPoolExecutor(args.jobs) as pool:
        tmp = Path(tmp_name)
        RUNNER = Runner(tmp / "logs", fresh=args.fresh)
        # References first: the cases that wait for them are queued behind them, so no worker waits on a
        # reference that has not started.
        crash_reference = pool.submit(reference_run, tmp / "reference", TINY) if "crash" in args.only else None
        disk_reference = pool.submit(disk_references, tmp) if "disk" in args.only else None
        if "malformed" in args.only:
            futures += malformed_cases(tmp, pool)
        if "config" in args.only:
            futures += config_cases(tmp, pool)
        if "inputs" in args.only:
            futures.append(pool.submit(input_change_cases, tmp))
        if "configs" in args.only:
            futures.append(pool.submit(random_configs, args.random_configs))
        if crash_reference is not None:
            markers = MARKERS[::4] if args.quick else MARKERS
            for index, marker in enumerate(markers):
                futures.append(pool.submit(lambda i=index, m=marker: report_case(crash_case(tmp, i, m, crash_reference.result()))))
            futures.append(pool.submit(lambda: report_case(interrupt_case(tmp, crash_reference.result()))))
            futures.append(pool.submit(lambda: damaged_state_cases(tmp, crash_reference.result())))
            futures.append(pool.submit(lambda: (crash_reference.result(), report_case(changed_config_kill_case(tmp, tmp / "reference")))[1]))
        if disk_reference is not None:
            for writer in DISK_WRITERS:
                futures.append(pool.submit(lambda w=writer: report_case(
                    disk_full_case(tmp, w, disk_reference.result()[0], disk_reference.result()[1], use_tmpfs))))
            futures.append(pool.submit(lambda: report_case(whole_run_small_disk(tmp, disk_reference.result()[0][1], use_tmpfs))))
        cases: list[Case] = []
        for future in futures:
            try:
                result = future.result()
            except Exception as err:  # noqa: BLE001 - a broken case is a failed case, not a crashed benchmark
                import traceback

                result = report_case(Case("benchmark", "case crashed", "runs", f"{type(err).__name__}: {err}", False,
                                          traceback.format_exc()))
            cases += result if isinstance(result, list) else [result]
        RUNNER.close()
    order = {name: i for i, name in enumerate(("crash", "malformed", "config", "inputs", "disk full", "configs", "benchmark"))}
    cases.sort(key=lambda c: order.get(c.section, 99))
    print()
    print(summary_table(cases))
    print()
    for section in order:
        chosen = [c for c in cases if c.section == section]
        if chosen:
            passed = sum(c.ok is True for c in chosen)
            skipped = sum(c.ok is None for c in chosen)
            print(f"{section}: {passed} of {len(chosen) - skipped} passed" + (f" ({skipped} skipped)" if skipped else ""))
    failed = [c for c in cases if c.ok is False]
    passed = sum(c.ok is True for c in cases)
    print(f"total: {passed} passed, {len(failed)} failed, {sum(c.ok is None for c in cases)} skipped "
          f"in {(time.time() - start) / 60:.1f} min")
    for case in failed:
        print(f"\nFAIL [{case.section}] {case.name}: {case.outcome}\n  {case.detail[:3000]}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
