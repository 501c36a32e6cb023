"""Loading and validating a config imports neither torch, transformers nor numba: a config error is
reported in well under a second, not after the several CPU-seconds those imports take."""

import subprocess
import sys

HEAVY = ("torch", "transformers", "numba", "datasets", "ray")


def _imported(stderr: str) -> set[str]:
    """Top-level packages named in `python -X importtime` output (one line per imported module)."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def test_load_config_imports_no_heavy_library():
    code = ("import sys, corpuslab.config; corpuslab.config.load_config(None, ['training.lr=0.5']); "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_cli_config_error_imports_no_heavy_library():
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "corpuslab.cli", "run", "training.lr=-1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "training.lr" in done.stderr
    imported = _imported(done.stderr)
    assert "corpuslab" in imported  # the importtime lines were read
    assert not imported & set(HEAVY)


def test_cli_help_imports_no_heavy_library():
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "corpuslab.cli", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "usage: corpuslab" in done.stdout
    assert not _imported(done.stderr) & set(HEAVY)
