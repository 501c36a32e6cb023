"""What makes a report's comparison weak: the warnings at the top of report.html and in report.json.

Each warning is computed from the report's own numbers and carries the figure that triggered it and the
threshold it crossed, so a reader can judge it (`report["warnings"]`, a list of
`{"kind", "message", "figure", "threshold"}`). The thresholds are rules of thumb, documented here:

- seeds: fewer than `MIN_SEEDS` (2) training replicates in an arm leaves no interval and no paired test
  between arms; `RECOMMENDED_SEEDS` (3) gives a usable one (the t quantile falls from 12.7 at 2 to 4.3).
- held-out size: a val or test split scored on fewer than `MIN_HELD_OUT_DOCS` documents or
  `MIN_HELD_OUT_TOKENS` tokens: its loss moves with which documents happened to land in it, by more than
  the differences curation makes (a few hundredths of a nat).
- canaries: canary documents are more than the canaries' `max_share` of the training split's documents
  (the cap the canaries stage scales `canaries.count` to; `DEFAULT_CANARY_DOC_SHARE`, 25%, for reports
  that do not record it), or canary tokens more than `MAX_CANARY_TOKEN_SHARE` (10%) of its tokens (where
  the tokens stage records which documents are canaries): the arms then differ mostly in how many random
  digit strings they train on, and a tenth of the budget moves a reference's loss by about as much as
  curation does.
- repetition: an arm that sees its kept data more than `MAX_EPOCHS` times (4: Muennighoff et al. 2023,
  "Scaling Data-Constrained Language Models", find up to ~4 epochs nearly as good as fresh data, and
  quickly diminishing returns beyond) is compared on a data budget it has exhausted.
- synthetic tasks (`synthetic_*`, generated from the synthetic corpus's grammars) scored on a model trained
  on another corpus measure nothing the model could have learned.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

MIN_SEEDS = 2
RECOMMENDED_SEEDS = 3
MIN_HELD_OUT_DOCS = 50
MIN_HELD_OUT_TOKENS = 10_000
DEFAULT_CANARY_DOC_SHARE = 0.25
MAX_CANARY_TOKEN_SHARE = 0.10
MAX_EPOCHS = 4.0
SYNTHETIC_TASK_PREFIX = "synthetic_"


def comparison_warnings(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every warning that applies to `report` (the dict of report.json), in the order the page shows them."""
    return [*_seeds(report), *_held_out(report), *_canaries(report), *_repetition(report), *_synthetic_tasks(report)]


def _warning(kind: str, message: str, figure: Any, threshold: Any) -> dict[str, Any]:
    return {"kind": kind, "message": message, "figure": figure, "threshold": threshold}


def _seeds(report: dict[str, Any]) -> Iterator[dict[str, Any]]:
    counts = {name: len(arm.get("replicates", [])) for name, arm in report.get("arms", {}).items()}
    few = {name: n for name, n in counts.items() if n < MIN_SEEDS}
    if not few:
        return
    fewest = min(few.values())
    which = "every arm has" if len(few) == len(counts) else f"{', '.join(few)} {'has' if len(few) == 1 else 'have'}"
    yield _warning("seeds", f"Too few seeds: {which} {fewest} seed{'s' if fewest != 1 else ''}, so no interval and no "
                   f"significance test between arms is possible. At least {MIN_SEEDS} seeds per arm are needed for a "
                   f"paired test, {RECOMMENDED_SEEDS} or more for a useful interval (e.g. seeds=[0,1,2]).",
                   fewest, MIN_SEEDS)


def held_out_sizes(report: dict[str, Any]) -> dict[str, dict[str, float]]:
    """{split: {docs, tokens}} as scored by the evaluation (the fewest over replicates), falling back to the
    tokenized split's counts when no evaluation recorded them."""
    sizes: dict[str, dict[str, float]] = {}
    for arm in report.get("arms", {}).values():
        for replicate in arm.get("replicates", []):
            for split in ("val", "test"):
                scored = (replicate.get("metrics") or {}).get(split) or {}
                for field in ("docs", "tokens"):
                    if isinstance(scored.get(field), (int, float)):
                        entry = sizes.setdefault(split, {})
                        entry[field] = min(entry.get(field, scored[field]), scored[field])
    tokens = report.get("corpus", {}).get("tokens", {}).get("splits", {})
    for split in ("val", "test"):
        if split not in sizes and split in tokens:
            sizes[split] = {"docs": tokens[split].get("documents"), "tokens": tokens[split].get("tokens")}
    return sizes


def _held_out(report: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for split, size in held_out_sizes(report).items():
        docs, tokens = size.get("docs"), size.get("tokens")
        if docs is not None and docs < MIN_HELD_OUT_DOCS:
            yield _warning(f"{split}_size", f"Tiny {split} set: {int(docs):,} documents scored (threshold "
                           f"{MIN_HELD_OUT_DOCS}); its loss depends on which documents landed in it, so small "
                           f"differences between arms may be noise. Use a larger corpus or split.{split}.",
                           int(docs), MIN_HELD_OUT_DOCS)
        elif tokens is not None and tokens < MIN_HELD_OUT_TOKENS:
            yield _warning(f"{split}_size", f"Tiny {split} set: {int(tokens):,} tokens scored (threshold "
                           f"{MIN_HELD_OUT_TOKENS:,}); small differences between arms may be noise. Use a larger "
                           f"corpus, split.{split} or evaluation.max_tokens.", int(tokens), MIN_HELD_OUT_TOKENS)


def canary_shares(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The canaries' share of the training split by documents (from the canaries and split manifests) and, where
    the report has `corpus.canary_share` (computed from the tokens stage), by tokens; each with its threshold."""
    corpus = report.get("corpus", {})
    canaries = corpus.get("canaries") or {}
    shares = []
    documents = canaries.get("documents")
    train = canaries.get("train_documents", (corpus.get("split") or {}).get("documents", {}).get("train"))
    if documents and train is not None:
        limit = canaries.get("max_share") or ((report.get("config") or {}).get("canaries") or {}).get("max_share")
        shares.append({"share": documents / (train + documents), "by": "documents", "canary": documents,
                       "total": train + documents, "threshold": float(limit or DEFAULT_CANARY_DOC_SHARE)})
    recorded = corpus.get("canary_share") or {}
    if recorded.get("token_share") is not None:
        shares.append({"share": recorded["token_share"], "by": "tokens", "canary": recorded["tokens"],
                       "total": recorded["train_tokens"], "threshold": MAX_CANARY_TOKEN_SHARE})
    return shares


def _canaries(report: dict[str, Any]) -> Iterator[dict[str, Any]]:
    over = [s for s in canary_shares(report) if s["share"] > s["threshold"]]
    if not over:
        return
    share = max(over, key=lambda s: s["share"] / s["threshold"])
    yield _warning("canaries", f"Canaries are {100 * share['share']:.1f}% of the training split by {share['by']} "
                   f"({share['canary']:,} of {share['total']:,}; threshold {100 * share['threshold']:g}%): arms differ "
                   "mostly in how much canary text they keep. Lower canaries.count, canaries.copies or "
                   "canaries.max_share.", round(share["share"], 4), share["threshold"])


def _repetition(report: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for name, arm in report.get("arms", {}).items():
        epochs = (arm.get("aggregate", {}).get("training.epochs_seen") or {}).get("mean")
        if epochs is not None and epochs > MAX_EPOCHS:
            yield _warning("epochs", f"Arm {name} repeats its data {epochs:.1f} times (threshold {MAX_EPOCHS:g} epochs): "
                           "beyond about 4 epochs repeated tokens are worth much less than fresh ones, so this arm is "
                           "judged on a data budget it has exhausted.", round(epochs, 4), MAX_EPOCHS)


def _synthetic_tasks(report: dict[str, Any]) -> Iterator[dict[str, Any]]:
    source = ((report.get("config") or {}).get("dataset") or {}).get("source")
    if source in (None, "synthetic"):
        return
    tasks = sorted({task for arm in report.get("arms", {}).values() for r in arm.get("replicates", [])
                    for task in (r.get("metrics", {}).get("tasks") or {}) if task.startswith(SYNTHETIC_TASK_PREFIX)})
    if tasks:
        yield _warning("synthetic_tasks", f"Synthetic tasks ({', '.join(tasks)}) were scored on models trained on a "
                       f"{source} corpus: they are generated from the synthetic corpus's grammars and say nothing about "
                       "this data. Name real tasks in evaluation.tasks.", len(tasks), 0)
