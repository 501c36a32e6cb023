"""A fork server for `benchmarks/reliability.py`: imports corpuslab and its heavy dependencies once, then
forks one child per case, and the child runs `corpuslab.cli.main(argv)` as `python -m corpuslab.cli` does.

Starting a fresh interpreter costs several seconds of imports (torch, transformers, pyarrow, matplotlib) per
case; the benchmark runs about 150 cases, most of which stop within a second of work. Each child:

- gets its own session (so the benchmark can SIGKILL or SIGINT its whole process group, as a terminal
  would), its own environment, stdout and stderr redirected to files, stdin from /dev/null;
- restores the default Ctrl-C handler, installs a disk-full hook when asked (`reliability_diskfull.install`);
- calls `corpuslab.cli.main(argv)`; an exception escaping it prints Python's traceback and exits 1, as the
  interpreter would; then exits through `sys.exit`, so atexit handlers and thread joins run as usual.

Protocol (JSON lines): request {"id", "argv", "env", "stdout", "stderr", "writer"} on stdin; replies
{"id", "pid"} when forked and {"id", "rc"} when the child exits (rc < 0: killed by that signal).
The server is single-threaded, so forking it is safe.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import traceback


def preload() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401
    from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast  # noqa: F401

    import corpuslab.api  # noqa: F401
    import corpuslab.cli  # noqa: F401
    import corpuslab.config  # noqa: F401
    import corpuslab.curation.dedup.near  # noqa: F401
    import corpuslab.evaluation.lm  # noqa: F401
    import corpuslab.evaluation.tasks  # noqa: F401
    import corpuslab.experiment  # noqa: F401
    import corpuslab.report.build  # noqa: F401
    import corpuslab.sources.local  # noqa: F401
    import corpuslab.training.trainer  # noqa: F401
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import reliability_diskfull  # noqa: F401


def child(request: dict) -> None:
    os.setsid()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    out = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(out, 1)
    os.dup2(err, 2)
    for fd in (devnull, out, err):
        os.close(fd)
    # sys.stdout and sys.stderr keep their objects (their buffers were flushed before the fork): they now write
    # to the files, and handlers that captured them at import write there too.
    os.environ.clear()
    os.environ.update(request["env"])
    code = 1
    try:
        if request.get("writer"):
            import reliability_diskfull

            reliability_diskfull.install(request["writer"])
        from corpuslab.cli import main

        code = main(request["argv"])
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        if not isinstance(exit_.code, int) and exit_.code is not None:
            print(exit_.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - what the interpreter does with an exception that escapes
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)


def serve() -> None:
    preload()
    reply = os.fdopen(os.dup(1), "w", buffering=1)
    children: dict[int, int] = {}  # pid -> request id
    buffer = b""
    stdin_open = True
    while stdin_open or children:
        if stdin_open:
            ready, _, _ = select.select([0], [], [], 0.02)
        else:
            ready = []
            select.select([], [], [], 0.02)
        if ready:
            chunk = os.read(0, 1 << 16)
            if not chunk:
                stdin_open = False
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                request = json.loads(line)
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    reply.close()
                    child(request)
                children[pid] = request["id"]
                reply.write(json.dumps({"id": request["id"], "pid": pid}) + "\n")
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            if pid in children:
                rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
                reply.write(json.dumps({"id": children.pop(pid), "rc": rc}) + "\n")


if __name__ == "__main__":
    serve()
