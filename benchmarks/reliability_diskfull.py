"""Run the corpuslab CLI with the disk filling up just as one writer starts: the ENOSPC driver of
`benchmarks/reliability.py` (section "disk full").

    RELIABILITY_WRITER=decisions RELIABILITY_FILL=/mnt/small/ballast RELIABILITY_FIRED=/tmp/fired \
        python benchmarks/reliability_diskfull.py run output_dir=/mnt/small/out ...

The named writer's function is wrapped. On its matching call the wrapper fills the file system that holds
`RELIABILITY_FILL` (a small tmpfs) with a ballast file until the kernel answers ENOSPC, records that it fired
in `RELIABILITY_FIRED`, then calls the real writer, which meets a genuinely full disk: the errors are the
ones a user would see (OSError from Python and Arrow, SafetensorError from safetensors, RuntimeError from
torch.save). Without `RELIABILITY_FILL` (no tmpfs: not root) the wrapper raises those errors itself.
Everything after the hook is the real `corpuslab.cli.main`; an exception escaping it prints Python's
traceback, as `python -m corpuslab.cli` would.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

_CHUNKS = (1 << 20, 1 << 16, 1 << 12, 1 << 8, 1)


def fill_disk(ballast: Path) -> int:
    """Write `ballast` until the file system is full; returns the bytes written."""
    written = 0
    with open(ballast, "ab", buffering=0) as handle:
        for size in _CHUNKS:
            block = b"\0" * size
            while True:
                try:
                    handle.write(block)
                except OSError as err:
                    if err.errno != errno.ENOSPC:
                        raise
                    break
                written += size
    return written


class Hook:
    """Fire once, on the `nth` call of the wrapped function whose arguments satisfy `when`."""

    def __init__(self, kind: str, when: Callable[..., bool] = lambda *a, **k: True, nth: int = 1):
        self.kind, self.when, self.nth, self.calls, self.fired = kind, when, nth, 0, False

    def wrap(self, original: Callable) -> Callable:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not self.fired and self.when(*args, **kwargs):
                self.calls += 1
                if self.calls == self.nth:
                    self.fired = True
                    self.fire(args)
            return original(*args, **kwargs)

        return wrapper

    def fire(self, args: tuple) -> None:
        fired = os.environ.get("RELIABILITY_FIRED")
        if fired:
            Path(fired).write_text(self.kind)
        ballast = os.environ.get("RELIABILITY_FILL")
        if ballast:
            fill_disk(Path(ballast))
            return
        # No small file system to fill: raise what each library raises on a full disk.
        message = "No space left on device"
        if self.kind == "safetensors":
            from safetensors import SafetensorError

            raise SafetensorError(f"Error while serializing: IoError(Os {{ code: 28, kind: StorageFull, message: \"{message}\" }})")
        if self.kind == "torch.save":
            raise RuntimeError("[enforce fail at inline_container.cc:783] . PytorchStreamWriter failed writing file "
                               "data/0: file write failed")
        raise OSError(errno.ENOSPC, message)


def _name_is(name: str, parent_prefix: str | None = None) -> Callable[..., bool]:
    def when(*args: Any, **kwargs: Any) -> bool:
        path = next((Path(a) for a in args if isinstance(a, (str, os.PathLike))), None)
        # Outputs written as one set go to a staged name first (`.tmp-<pid>-set-report.json`, see atomic.FileSet).
        if path is None or not (path.name == name or path.name.endswith(f"-set-{name}")):
            return False
        return parent_prefix is None or path.parent.name.startswith(parent_prefix)

    return when


def _in_stage(prefix: str) -> Callable[..., bool]:
    """The first positional argument (a writer object or a path) lives in a temporary folder of stage `prefix`."""
    def when(*args: Any, **kwargs: Any) -> bool:
        target = args[0]
        folder = getattr(target, "folder", None) or getattr(target, "path", None) or target
        return any(part.startswith(f".{prefix}-") for part in Path(str(folder)).parts)

    return when


def _into(folder: str) -> Callable[..., bool]:
    """safetensors' save_file(tensors, filename) into the temporary folder of checkpoint `folder` (.tmp-<pid>-final)."""
    def when(*args: Any, **kwargs: Any) -> bool:
        path = Path(str(args[1] if len(args) > 1 else kwargs.get("filename")))
        return path.parent.name.endswith(f"-{folder}") or path.parent.name == folder

    return when


def install(writer: str) -> None:
    """Wrap the function that does `writer`'s writing (names as in reliability.DISK_WRITERS)."""
    import torch
    import transformers.modeling_utils as modeling_utils
    from transformers.tokenization_utils_base import PreTrainedTokenizerBase

    import corpuslab.artifacts as artifacts
    import corpuslab.evaluation.metrics as metrics
    import corpuslab.experiment as experiment
    import corpuslab.report.build as report_build
    import corpuslab.report.html as report_html
    from corpuslab.curation.decisions import DecisionWriter
    from corpuslab.shards import ShardWriter

    def patch(owner: Any, name: str, hook: Hook) -> None:
        setattr(owner, name, hook.wrap(getattr(owner, name)))

    hooks: dict[str, Callable[[], None]] = {
        "disk_full_at_start": lambda: patch(experiment.Experiment, "build", Hook("OSError")),
        "ingest_shards": lambda: patch(ShardWriter, "_flush", Hook("OSError", _in_stage("ingest"))),
        "ingest_bad_input_json": lambda: patch(experiment, "write_json_atomic", Hook("OSError", _name_is("bad_input.json"))),
        "split_manifest": lambda: patch(artifacts, "write_json_atomic", Hook("OSError", _name_is("manifest.json", ".split-"))),
        "tokenizer_files": lambda: patch(PreTrainedTokenizerBase, "save_pretrained", Hook("OSError")),
        "token_stream": lambda: patch(experiment, "write_token_stream", Hook("OSError")),
        "curate_decisions": lambda: patch(DecisionWriter, "__init__", Hook("OSError")),
        "checkpoint_safetensors": lambda: patch(modeling_utils, "safe_save_file", Hook("safetensors", nth=3)),
        "checkpoint_torch_save": lambda: patch(torch, "save", Hook("torch.save", _name_is("trainer_state.pt"), nth=2)),
        "final_checkpoint": lambda: patch(modeling_utils, "safe_save_file", Hook("safetensors", _into("final"))),
        "evaluate_metrics_json": lambda: patch(metrics, "write_json_atomic", Hook("OSError", _name_is("metrics.json"))),
        "report_json": lambda: patch(report_build, "write_json_atomic", Hook("OSError", _name_is("report.json"))),
        "summary_tsv": lambda: patch(report_build, "write_summary", Hook("OSError")),
        "report_html": lambda: patch(report_html, "write_text_atomic", Hook("OSError", _name_is("report.html"))),
        "config_yaml": lambda: patch(experiment, "write_text_atomic", Hook("OSError", _name_is("config.yaml"))),
    }
    hooks[writer]()


def main() -> None:
    install(os.environ["RELIABILITY_WRITER"])
    from corpuslab.cli import main as cli_main

    sys.exit(cli_main(sys.argv[1:]))


if __name__ == "__main__":
    main()
