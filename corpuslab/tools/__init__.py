"""Standalone tools: one part of corpuslab without an experiment, config file or output tree.

    corpuslab dedup INPUT... --out DIR      deduplicate files (`tools/dedup.py`, the curation engine)
    corpuslab score CHECKPOINT --tasks ...  zero-shot scores of any checkpoint (`tools/score.py`)

Each tool is a module with `add_arguments(parser)` and `main(args)`; this file only lists them, so the
CLI gains a tool without touching its stage commands.
"""

from __future__ import annotations

import argparse
import importlib

TOOLS = {
    "dedup": "deduplicate files on their own: exact or near (MinHash LSH, verified Jaccard or containment); "
             "writes the kept documents, decisions, verified pairs and clusters",
    "score": "score any checkpoint (a folder or a Hugging Face model) on zero-shot tasks and print the "
             "lm-evaluation-harness style table",
}


def add_tool_commands(commands) -> None:
    for name, help_text in TOOLS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the Python traceback of an error")
        importlib.import_module(f"corpuslab.tools.{name}_cli").add_arguments(sub)


def run_tool(name: str, args: argparse.Namespace) -> int:
    return importlib.import_module(f"corpuslab.tools.{name}_cli").main(args)
