"""The `corpuslab` command.

    corpuslab run [--config FILE ...] [key.path=value ...]     the whole experiment
    corpuslab prepare | curate | train | evaluate | report       one stage and what it needs
    corpuslab prefetch                                           download an HF split to the local cache
    corpuslab dedup INPUT... --out DIR                           deduplicate files on their own (corpuslab/tools/dedup.py)
    corpuslab score CHECKPOINT --tasks ...                       score a checkpoint on zero-shot tasks (tools/score.py)
    corpuslab clusters [--arm NAME]                              embed and cluster, print the clusters to inspect
    corpuslab export --arm NAME --out DIR                        an arm's curated train split as a HF dataset
    corpuslab push DIR --repo OWNER/NAME                         upload an exported dataset or a model to the Hub
    corpuslab compress CONFIG.yaml [key.path=value ...]          a compression experiment (corpuslab/compression/)
    corpuslab report DIR... [--out FILE]                         one table across finished experiments

Stage commands behave like `make`: they build the stages they depend on when missing and reuse
every complete one, so `corpuslab train` after `corpuslab curate` does not curate again.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable

from corpuslab.errors import CorpuslabError

STAGE_HELP = {
    "run": "run the whole experiment: prepare, curate, train and evaluate every arm, then report",
    "prepare": "ingest the corpus, split it, insert canaries, decontaminate val/test, train the tokenizer, tokenize",
    "curate": "write each arm's decision table (kept/dropped, reason, cluster) and stats",
    "train": "train one model per arm under the shared token budget",
    "evaluate": "score each arm's model: loss, perplexity, bits per byte, canary memorization",
    "report": "write report.json, summary.tsv and report.html from the finished stages; "
              "given experiment folders (DIR...), print one table across them",
    "prefetch": "download the configured Hugging Face dataset split to the local cache",
    "clusters": "embed and cluster the train split as a distillation arm does, and print each cluster "
                "(size, distances, top terms, closest and farthest documents) to choose exclusions",
    "export": "write an arm's curated train split as a Hugging Face dataset folder (Parquet shards and a dataset "
              "card recording the recipe), loadable with datasets.load_dataset(DIR)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="corpuslab",
        description="Does this training data make a better model? Curate a corpus, train small GPTs per recipe, compare.",
    )
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text in STAGE_HELP.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the Python traceback of an error")
        sub.add_argument("--config", action="append", default=[], metavar="FILE",
                         help="YAML config layered on the built-in default (configs/default.yaml); repeat to layer "
                              "more files (later ones win). Relative paths inside a file resolve against its folder")
        sub.add_argument("--no-defaults", action="store_true",
                         help="start from nothing instead of the built-in default: the files must give every arm and setting")
        sub.add_argument("overrides", nargs="*", metavar="key.path=value",
                         help="overrides applied after the files, e.g. training.max_steps=50 runs.2.minhash.threshold=0.9")
        if name == "report":
            sub.add_argument("--out", metavar="FILE", help="with DIR...: also write the table as TSV to FILE")
        if name == "export":
            sub.add_argument("--out", metavar="DIR", required=True, help="the dataset folder to write")
        if name in ("run", "train", "evaluate"):
            sub.add_argument("--jobs", type=int, default=1, metavar="N",
                             help="train N arms at once, each in its own process (on its own GPU when there are "
                                  "several); each arm's result is the one a sequential run gives")
        if name in ("curate", "train", "evaluate", "clusters", "export"):
            sub.add_argument("--arm", action="append", default=[], metavar="NAME", help="only these arms (repeatable)")
        if name == "evaluate":
            sub.add_argument("--checkpoint", metavar="PATH_OR_NAME",
                             help="score this checkpoint folder or Hugging Face model on the experiment's val/test "
                                  "instead of the arms' models")
    push = commands.add_parser("push", help="upload a dataset folder (corpuslab export) or a model folder (a run's final/) "
                               "to the Hugging Face Hub; the token comes from HF_TOKEN and is never printed")
    push.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the Python traceback of an error")
    push.add_argument("folder", metavar="DIR")
    push.add_argument("--repo", required=True, metavar="OWNER/NAME")
    push.add_argument("--type", choices=["dataset", "model"], default=None, help="default: from the folder's contents")
    push.add_argument("--private", action="store_true")
    push.add_argument("--endpoint", default=None, help="another Hub endpoint (default: huggingface.co or HF_ENDPOINT)")
    compress = commands.add_parser("compress", help="a compression experiment (configs/compression.yaml): byte-level models, "
                                    "regularized training and pruning, code and description length, gzip/bzip2/xz/zstd")
    compress.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the Python traceback of an error")
    compress.add_argument("config", nargs="+", metavar="CONFIG.yaml | key.path=value",
                          help="one or more YAML files (layered in order), then overrides")
    from corpuslab.tools import add_tool_commands

    add_tool_commands(commands)
    return parser


# Commands with no stages to resume: an interrupted one just stopped.
NO_STAGES = ("score",)


def main(argv: list[str] | None = None) -> int:
    _fixed_thread_counts()
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except CorpuslabError as err:
        _traceback_if(args.debug)
        if os.environ.get("RANK", "0") == "0":  # under torchrun every rank meets the same user error: print it once
            print(f"corpuslab: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _traceback_if(args.debug)
        resumes = args.command not in NO_STAGES
        print("corpuslab: interrupted; " + ("finished stages are kept and the next run resumes" if resumes else
              f"'{args.command}' stopped before it finished and wrote no results"), file=sys.stderr)
        return 130
    except Exception as err:  # a bug, or a failure no check anticipated: still one paragraph, not a traceback
        _traceback_if(args.debug)
        print(f"corpuslab: unexpected error in '{args.command}': {type(err).__name__}: {err}. Finished stages are "
              "kept. Rerun with --debug for the traceback, and please report it.", file=sys.stderr)
        return 1


def _traceback_if(debug: bool) -> None:
    if debug:
        traceback.print_exc()


def _fixed_thread_counts() -> None:
    """Same config and seed, same losses on CPU: stop the math libraries from using fewer threads when the
    machine is busy, which changes the order of floating-point reductions. Set before torch is imported;
    a user's own setting wins."""
    os.environ.setdefault("MKL_DYNAMIC", "FALSE")
    os.environ.setdefault("OMP_DYNAMIC", "FALSE")


def _quiet_libraries() -> None:
    """corpuslab prints its own progress; the per-save bars of transformers would bury it. transformers 5
    warns on every GPT-2 forward that `past_key_values` is deprecated although corpuslab never passes it
    (the LM head model forwards its own None): a warning the user can do nothing about.
    Called once the config has loaded: importing transformers takes a second, which a config error should
    not wait for."""
    import warnings

    warnings.filterwarnings("ignore", message=r".*`past_key_values` is deprecated", category=FutureWarning)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def _load(args: argparse.Namespace):
    from corpuslab.config import load_config

    cfg = load_config(args.config or None, args.overrides, defaults=not getattr(args, "no_defaults", False))
    _quiet_libraries()
    return cfg


def _with_experiment(action: Callable) -> Callable[[argparse.Namespace], int]:
    """Load and validate the config before any work, lock the output folder, then run `action`."""

    def command(args: argparse.Namespace) -> int:
        from corpuslab.api import arm_indices, open_experiment

        cfg = _load(args)
        arms = arm_indices(cfg, getattr(args, "arm", []), "--arm")
        with open_experiment(cfg, label=args.command) as experiment:
            extra = {"checkpoint": args.checkpoint} if getattr(args, "checkpoint", None) else {}
            if getattr(args, "jobs", 1) != 1:
                extra["jobs"] = args.jobs
            action(experiment, arms, args.command, **extra)
        return 0

    return command


def _stage_command(experiment, arms: list[int], command: str, checkpoint: str | None = None, jobs: int = 1) -> None:
    """Every stage command walks the one pipeline in `corpuslab.experiment` up to its own stage."""
    from corpuslab.experiment import COMMAND_TARGETS

    if checkpoint:
        experiment.preflight("evaluate", checkpoint)
        experiment.evaluate_checkpoint(experiment.prepare(), checkpoint)
        return
    experiment.build(COMMAND_TARGETS[command], arms, jobs=jobs)


def _report(args: argparse.Namespace) -> int:
    """`report DIR...` aggregates finished experiments; `report [key=value ...]` rebuilds this one's report."""
    from corpuslab.errors import ConfigError

    folders = [arg for arg in args.overrides if "=" not in arg]
    if not folders:
        if args.out is not None:
            raise ConfigError("--out", args.out, "experiment folders to aggregate: corpuslab report DIR... --out FILE")
        return _with_experiment(_stage_command)(args)
    if len(folders) != len(args.overrides) or args.config:
        raise ConfigError("report", args.overrides, "either experiment folders (DIR...) or config overrides, not both")
    from corpuslab.report.aggregate import run_aggregate

    _quiet_libraries()
    run_aggregate(folders, args.out)
    return 0


def _prefetch(args: argparse.Namespace) -> int:
    from corpuslab.errors import ConfigError
    from corpuslab.sources.hf import prefetch

    cfg = _load(args)
    if cfg.dataset.source_name != "hf" or cfg.dataset.hf is None:
        raise ConfigError("dataset.source", cfg.dataset.source, "'hf' with a dataset.hf section to prefetch")
    print(prefetch(cfg.dataset.hf, None))
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": _with_experiment(_stage_command),
    "prepare": _with_experiment(_stage_command),
    "curate": _with_experiment(_stage_command),
    "train": _with_experiment(_stage_command),
    "evaluate": _with_experiment(_stage_command),
    "report": _report,
    "prefetch": _prefetch,
    "dedup": lambda args: _tool(args, "dedup"),
    "score": lambda args: _tool(args, "score"),
    "clusters": _with_experiment(lambda experiment, arms, command: _clusters(experiment, arms)),
    "export": lambda args: _export(args),
    "push": lambda args: _push(args),
    "compress": lambda args: _compress(args),
}


def _compress(args: argparse.Namespace) -> int:
    """The compression family's runner (corpuslab/compression/), the same as `python -m corpuslab.compression`."""
    from corpuslab.compression.runner import CompressionExperimentRunner, load_compression_config

    paths = [a for a in args.config if "=" not in a]
    overrides = [a for a in args.config if "=" in a]
    cfg = load_compression_config(paths, overrides)
    _quiet_libraries()
    CompressionExperimentRunner(cfg).run()
    return 0


def _tool(args: argparse.Namespace, name: str) -> int:
    """The standalone tools (no experiment, no config file): corpuslab/tools/."""
    from corpuslab.tools import run_tool

    return run_tool(name, args)


def _export(args: argparse.Namespace) -> int:
    from corpuslab.api import arm_indices, open_experiment
    from corpuslab.curation.export import export_dataset
    from corpuslab.errors import ConfigError

    cfg = _load(args)
    arms = arm_indices(cfg, args.arm, "--arm")
    if len(args.arm) != 1:
        raise ConfigError("--arm", args.arm, "exactly one arm to export")
    index = arms[0]
    if cfg.runs[index].level != "doc":
        raise ConfigError("--arm", args.arm[0], "a doc-level arm (chunk-level arms curate training windows, not documents)")
    with open_experiment(cfg, label=args.command) as experiment:
        prepared = experiment.prepare()
        curate = experiment.curate(prepared, index)
        items = prepared.train_shards(cfg.canaries.placement == "before_curation")
        result = export_dataset(curate.path, items, args.out, cfg.arm_recipe(index).describe(), cfg.runs[index].name, cfg.experiment)
    print(f"{result['documents']} documents in {result['shards']} shards: {result['folder']}")
    return 0


def _push(args: argparse.Namespace) -> int:
    from corpuslab.push import push

    result = push(args.folder, args.repo, args.type, args.private, args.endpoint)
    print(f"pushed {args.folder} to {result['type']} {result['repo']} (commit {result['commit']})")
    return 0


def _clusters(experiment, arms: list[int]) -> None:
    from corpuslab.distill.inspect import show_clusters

    show_clusters(experiment, arms)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


