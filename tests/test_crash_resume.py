"""SIGKILL the whole experiment at several points; the rerun must finish with the same report."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from corpuslab.report.build import reports_match, reproducible_part
from tests.conftest import TINY

# A tiny run that saves trainer state often, so a kill mid-training has something to resume from.
ARGS = [*TINY, "training.max_steps=16", "training.save_every=4", "training.eval_interval=8", "training.log_interval=2"]

# (what the log shows when we kill, which stage that is in)
KILL_POINTS = [
    ("[ingest] started", "ingest"),
    ("[decontaminate] started", "curation"),
    ("[tokens] started", "tokenization"),
    ("step 6/16", "training"),
    ("[evaluate exact] started", "evaluation"),
]


def command(out: Path) -> list[str]:
    return [sys.executable, "-m", "corpuslab.cli", "run", f"output_dir={out}", *ARGS]


def run_to_end(out: Path) -> None:
    done = subprocess.run(command(out), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def kill_when_logged(out: Path, marker: str) -> bool:
    """Start a run, SIGKILL it as soon as `marker` appears in its log; False if it finished first."""
    log = out / "tiny" / "run.log"
    proc = subprocess.Popen(command(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline:
        if log.exists() and marker in log.read_text():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.02)
    proc.wait()
    return False


def comparable(out: Path) -> dict:
    return reproducible_part(json.loads((out / "tiny" / "report.json").read_text()))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("uninterrupted")
    run_to_end(out)
    return comparable(out)


@pytest.mark.parametrize("marker, stage", KILL_POINTS, ids=[stage for _, stage in KILL_POINTS])
def test_killed_run_resumes_to_the_same_report(tmp_path, reference, marker, stage):
    assert kill_when_logged(tmp_path, marker), f"the run finished before reaching {marker!r}"
    assert not (tmp_path / "tiny" / "report.json").exists()
    # Whatever was killed mid-write must not look complete.
    for folder in (tmp_path / "tiny" / "stages").iterdir():
        if folder.is_dir() and not folder.name.startswith(".") and not folder.name.endswith(".partial"):
            assert (folder / "manifest.json").exists(), folder
    run_to_end(tmp_path)
    assert reports_match(comparable(tmp_path), reference) == []
