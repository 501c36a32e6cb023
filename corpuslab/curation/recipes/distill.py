"""Corpus distillation recipes (ALGORITHMS.md sections 1 and 2): `minipile` and `semdedup`.

Both read two shared, cached stages built on first use and reused by every arm with the same settings:
`embed` (corpuslab/distill/embed.py) and `cluster` (corpuslab/distill/cluster.py).

`minipile`: exclude clusters (by id, as a person chose them from `corpuslab clusters`, and by rules over
cluster statistics), then sample per cluster:
- uniform:      q_i = floor(N/K), the first N mod K kept clusters (index order) get +1 (the reproduction)
- size:         q_i = min(int(N n_i / S), n_i)
- density:      q_i = min(int(N (n_i/S) (1 - w rho_i)), n_i), rho_i = mean cosine distance, w = 0.5
- low_density:  the same with w = 0.75, topped up to the density variant's total (see `_top_up`)
- random:       the control arm, N documents drawn uniformly from the whole corpus; `match: density` (etc.)
                draws as many as that sampler keeps
with `rng = default_rng(seed)` and `rng.choice(idxs, size=min(len, q), replace=False)` per cluster.
Dropped documents say why: `excluded_cluster` (with the rule or `listed`) or `not_sampled`.

`semdedup`: within each cluster, rank members (hard: farthest from the centroid first; easy: closest first;
random), and drop j when its cosine similarity to an earlier-ranked member exceeds 1 - eps; the decision
row names that member (`duplicate_of`) and the similarity. Not transitive; singletons are kept.
"""

from __future__ import annotations

from abc import abstractmethod
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from corpuslab.artifacts import StageRunner
from corpuslab.curation.decisions import Decision
from corpuslab.curation.recipes.base import CurationContext, Recipe, recipes
from corpuslab.distill.cluster import ClusterConfig, cluster_stage, read_assignments, read_clusters
from corpuslab.distill.embed import EmbedConfig, Embeddings, embed_stage
from corpuslab.distill.reference import SELF, ReferenceTrainConfig, reference_identity, reference_stage
from corpuslab.errors import ConfigError
from corpuslab.schema import require, require_int, to_dict
from corpuslab.sources.synthetic.junk import is_junk_category

RULE_STATS = ("duplicate_rate", "average_distance", "share")
JUNK_CATEGORIES = ("boilerplate",)  # the synthetic corpus's junk: what a person would exclude, as ground truth


def is_junk(category: str | None) -> bool:
    """Ground truth of the synthetic corpus: its boilerplate, and its junk_<kind> documents when `junk` is on."""
    return category in JUNK_CATEGORIES or is_junk_category(category)


@dataclass(frozen=True)
class ExclusionRule:
    """Exclude every cluster whose `stat` is above `above` (or below `below`). stat: duplicate_rate (share of
    members with a near-identical neighbour), average_distance (spread), share (of all documents)."""

    stat: Literal["duplicate_rate", "average_distance", "share"]
    above: float | None = None
    below: float | None = None

    def validate(self, prefix: str) -> None:
        require(self.above is not None or self.below is not None, f"{prefix}.above", None, "a level (above or below)")

    def matches(self, value: float) -> bool:
        return (self.above is not None and value > self.above) or (self.below is not None and value < self.below)

    def label(self) -> str:
        return f"{self.stat}>{self.above}" if self.above is not None else f"{self.stat}<{self.below}"


class ClusteredRecipe(Recipe):
    """Shared by the distillation recipes: the embed and cluster stages, exclusion, accounting."""

    def shared_stages(self, items: list[Path], context: CurationContext):
        stages = context.stages or StageRunner(context.scratch / "shared", context.log)
        # The embed and cluster stages are stages of their own (the embed stage keeps its finished shards), so
        # they get the executor itself, not the curate stage's per-shard records.
        executor = getattr(context.executor, "unrecorded", context.executor)
        embed = embed_stage(stages, self.config.embed, items, context.log, executor)
        return embed, cluster_stage(stages, self.config.cluster, embed, items, context.log, executor)

    def decide(self, items: list[Path], inputs: dict[str, Path], context: CurationContext) -> Iterable[Decision]:
        embed, clusters = self.shared_stages(items, context)
        info = read_clusters(clusters.path)
        table = read_assignments(clusters.path)
        assignment = Assignment(table.column("id").to_pylist(), table.column("cluster").to_numpy().astype(np.int64),
                                table.column("distance").to_numpy().astype(np.float64), table.column("category").to_pylist())
        excluded = self.excluded_clusters(info)
        decisions = self.select(assignment, info, excluded, Embeddings(embed.path), items, context)
        context.stats.update(self.account(assignment, info, excluded, decisions))
        junk = context.stats.get("junk_removal")
        if junk and excluded:
            kinds = ", ".join(f"{k.removeprefix('junk_')} {v['recall']:.2f}" for k, v in junk["by_kind"].items())
            precision = "n/a" if junk["precision"] is None else f"{junk['precision']:.2f}"
            context.log(f"  junk excluded (ground truth): precision {precision}, recall {junk['recall']:.2f} ({kinds})")
        context.stats["settings"] = {k: v for k, v in to_dict(self.config).items() if k not in ("embed", "cluster")}
        context.stats["clustering"] = {"embed": embed.path.name, "cluster": clusters.path.name, "k": info["k"],
                                       "purity": info.get("purity"), "nmi": info.get("nmi")}
        return decisions

    def excluded_clusters(self, info: dict[str, Any]) -> dict[int, str]:
        """cluster -> why it is excluded ('listed', or the rule that matched)."""
        k, n = info["k"], max(1, info["documents"])
        excluded: dict[int, str] = {}
        for i, cluster in enumerate(getattr(self.config, "exclude", ())):
            if not 0 <= cluster < k:
                raise ConfigError(f"exclude[{i}]", cluster, f"a cluster id in 0..{k - 1} (cluster.k = {k})")
            excluded[cluster] = "listed"
        for rule in getattr(self.config, "exclude_rules", ()):
            for c in info["clusters"]:
                value = c["total_examples"] / n if rule.stat == "share" else c[rule.stat]
                if value is not None and rule.matches(value):
                    excluded.setdefault(c["cluster"], rule.label())
        return excluded

    @abstractmethod
    def select(self, assignment: Assignment, info: dict[str, Any], excluded: dict[int, str], emb: Embeddings,
               items: list[Path], context: CurationContext) -> list[Decision]:
        """The decisions of this sampler for the clustered documents (excluded clusters already known)."""

    def account(self, assignment: Assignment, info: dict[str, Any], excluded: dict[int, str],
                decisions: list[Decision]) -> dict[str, Any]:
        """Per cluster and per category: documents in, kept, dropped by reason; junk removal against truth."""
        dropped = {d.id: d.reason for d in decisions if not d.kept}
        per_cluster: dict[int, Counter] = {c["cluster"]: Counter() for c in info["clusters"]}
        per_category: dict[str, Counter] = {}
        for doc_id, cluster, category in zip(assignment.ids, assignment.clusters.tolist(), assignment.categories):
            reason = dropped.get(doc_id)
            for counter in (per_cluster[cluster], per_category.setdefault(str(category), Counter())):
                counter["in"] += 1
                counter["kept" if reason is None else reason] += 1
        cards = []
        for c in info["clusters"]:
            cards.append({**c, "excluded": excluded.get(c["cluster"]), "counts": dict(per_cluster[c["cluster"]])})
        stats: dict[str, Any] = {"clusters": cards, "by_category": {k: dict(v) for k, v in sorted(per_category.items())}}
        junk = {i: str(cat) for i, cat in zip(assignment.ids, assignment.categories) if is_junk(cat)}
        if junk:
            # Graded on documents with ground truth: those the experiment adds (canaries, a planted farm of their own)
            # have no category, and are counted apart rather than as wrongly excluded.
            untracked = {i for i, cat in zip(assignment.ids, assignment.categories) if cat is None}
            excluded = {i for i, reason in dropped.items() if reason == "excluded_cluster"}
            removed = excluded - untracked
            hit = len(junk.keys() & removed)
            by_kind: dict[str, Counter] = {}
            for doc_id, category in junk.items():
                counter = by_kind.setdefault(category, Counter())
                counter["documents"] += 1
                counter["excluded"] += doc_id in removed
            stats["junk_removal"] = {
                "junk_documents": len(junk), "excluded_documents": len(removed),
                "excluded_without_truth": len(excluded & untracked),
                "precision": hit / len(removed) if removed else None, "recall": hit / len(junk),
                "by_kind": {kind: {**c, "recall": c["excluded"] / c["documents"]} for kind, c in sorted(by_kind.items())}}
        return stats


@dataclass
class Assignment:
    """The cluster stage's per-document table, in corpus order."""

    ids: list[str]
    clusters: np.ndarray
    distances: np.ndarray
    categories: list[str | None]

    def members(self, k: int) -> list[np.ndarray]:
        order = np.argsort(self.clusters, kind="stable")
        bounds = np.searchsorted(self.clusters[order], np.arange(k + 1))
        return [order[bounds[c]:bounds[c + 1]] for c in range(k)]


@recipes.register
class MiniPile(ClusteredRecipe):
    """Embed, cluster, exclude clusters, sample per cluster (MiniPile and the MiniCorpus samplers)."""

    name = "minipile"

    @dataclass(frozen=True)
    class Config:
        embed: EmbedConfig = field(default_factory=EmbedConfig)
        cluster: ClusterConfig = field(default_factory=ClusterConfig)
        exclude: tuple[int, ...] = ()
        exclude_rules: tuple[ExclusionRule, ...] = ()
        sampler: Literal["uniform", "size", "density", "low_density", "loss", "random"] = "uniform"
        target: float = 0.25  # at most 1: a fraction of the documents; above 1: a number of documents
        density_weight: float | None = None  # w; null: 0.5 for density, 0.75 for low_density
        # random: as many as this sampler keeps under this arm's exclusions (which shape only that count: the
        # random draw is from the whole corpus)
        match: Literal["uniform", "size", "density", "low_density"] | None = None
        seed: int = 42
        # loss: a reference causal LM (checkpoint folder, e.g. a corpuslab run's final/, or a hub name) scores
        # `loss_docs` documents per kept cluster on their first `loss_chars` characters (at most `loss_tokens`).
        # `reference: self` trains one first on a random half of the corpus (`reference_train`), as the MiniCorpus
        # seed did, and scores documents of the other half.
        reference: str | None = None
        reference_train: ReferenceTrainConfig = field(default_factory=ReferenceTrainConfig)
        loss_docs: int = 1000
        loss_chars: int = 512
        loss_tokens: int = 512

        def validate(self, prefix: str) -> None:
            require(self.target > 0 and (self.target <= 1 or float(self.target).is_integer()), f"{prefix}.target",
                    self.target, "a fraction in (0, 1] or a whole number of documents")
            require(self.density_weight is None or 0 <= self.density_weight <= 1, f"{prefix}.density_weight",
                    self.density_weight, "a number in [0, 1] or null")
            require(self.match is None or self.sampler == "random", f"{prefix}.match", self.match,
                    "null unless sampler is 'random'")
            require(len(set(self.exclude)) == len(self.exclude), f"{prefix}.exclude", self.exclude, "distinct cluster ids")
            require_int(self.seed, f"{prefix}.seed", 0)
            for key in ("loss_docs", "loss_chars", "loss_tokens"):
                require_int(getattr(self, key), f"{prefix}.{key}", 1)
            require(self.sampler != "loss" or self.reference is not None, f"{prefix}.reference", self.reference,
                    "a checkpoint folder, a Hugging Face model name, or 'self' (train one on a random half of the corpus): "
                    "sampler 'loss' scores clusters with it")
            self.reference_train.validate(f"{prefix}.reference_train")
            if self.sampler == "loss" and self.reference != SELF and Path(self.reference).exists():
                require((Path(self.reference) / "config.json").exists(), f"{prefix}.reference", self.reference,
                        "a checkpoint folder with a config.json (saved by save_pretrained)")
            for i, cluster in enumerate(self.exclude):
                require(cluster >= 0, f"{prefix}.exclude[{i}]", cluster, "a cluster id >= 0")
                require(cluster < self.cluster.k, f"{prefix}.exclude[{i}]", cluster, f"a cluster id below cluster.k ({self.cluster.k})")

    def fingerprint(self, *inputs: Any) -> str:
        """A `loss` arm's folder also depends on its reference model's identity, not only on its name or path
        (retrained weights in the same folder make a new arm); other samplers' fingerprints are as before."""
        if self.config.sampler != "loss":
            return super().fingerprint(*inputs)
        return super().fingerprint(*inputs, {"reference": self.reference_identity()})

    def describe(self) -> dict[str, Any]:
        described = super().describe()
        if self.config.sampler == "loss":
            described["reference"] = self.reference_identity()
        return described

    def reference_identity(self) -> dict[str, Any]:
        assert self.config.reference is not None  # validate() requires one for the loss sampler
        return reference_identity(self.config.reference, self.config.reference_train)

    def select(self, assignment: Assignment, info: dict[str, Any], excluded: dict[int, str], emb: Embeddings,
               items: list[Path], context: CurationContext) -> list[Decision]:
        cfg = self.config
        n_docs, k = len(assignment.ids), info["k"]
        target = int(round(cfg.target * n_docs)) if cfg.target <= 1 else int(cfg.target)
        members = assignment.members(k)
        kept_clusters = [c for c in range(k) if c not in excluded]
        if not kept_clusters and cfg.sampler != "random":
            raise ConfigError("exclude", sorted(excluded), f"fewer than all {k} clusters excluded")
        available = sum(len(members[c]) for c in kept_clusters)
        if cfg.sampler == "random":
            pool = n_docs
            if cfg.match is not None:
                target = len(sample_clusters(cfg.match, target, members, kept_clusters, info, None, cfg.seed))
        else:
            pool = available
        if target > pool:
            raise ConfigError("target", cfg.target, f"at most the {pool} documents left after excluding clusters "
                              f"{sorted(excluded)} ({target} asked)")
        if cfg.sampler == "random":
            chosen = np.sort(np.random.default_rng(cfg.seed).choice(n_docs, size=target, replace=False))
        elif cfg.sampler == "loss":
            losses = self.reference_losses(members, kept_clusters, items, context)
            chosen = loss_sample(target, members, kept_clusters, losses, cfg.seed)
        else:
            chosen = sample_clusters(cfg.sampler, target, members, kept_clusters, info, cfg.density_weight, cfg.seed)
        keep = np.zeros(n_docs, bool)
        keep[chosen] = True
        context.log(f"  minipile ({cfg.sampler}): kept {int(keep.sum())} of {n_docs} (target {target}); "
                    f"excluded clusters {sorted(excluded)}")
        context.stats["target"] = target
        decisions = []
        for row in np.nonzero(~keep)[0]:
            cluster = int(assignment.clusters[row])
            reason = "excluded_cluster" if cluster in excluded and cfg.sampler != "random" else "not_sampled"
            decisions.append(Decision(assignment.ids[row], False, reason, cluster_id=str(cluster),
                                      score=float(assignment.distances[row])))
        return decisions

    def reference_losses(self, members: list[np.ndarray], kept: list[int], items: list[Path],
                         context: CurationContext) -> dict[int, float]:
        """L_i: the reference model's mean loss over up to `loss_docs` documents drawn from each kept cluster."""
        from corpuslab.shards import read_documents

        cfg = self.config
        reference = cfg.reference
        assert reference is not None
        if reference == SELF:  # train it on a random half; score documents of the other half
            stages = context.stages or StageRunner(context.scratch / "shared", context.log)
            stage = reference_stage(stages, cfg.reference_train, items, context.log)
            reference = str(stage.path / "model")
            trained = np.load(stage.path / "half.npy")
            members = [m[~np.isin(m, trained)] for m in members]
            made = stage.manifest()
            context.stats["reference_model"] = {"stage": stage.path.name,
                                                **{k: made[k] for k in ("documents", "tokens", "steps", "first_loss", "last_loss")}}
        rng = np.random.default_rng(cfg.seed)
        drawn = {c: rng.choice(members[c], size=min(len(members[c]), cfg.loss_docs), replace=False) for c in kept}
        wanted = {int(r): c for c, rows in drawn.items() for r in rows}
        texts: dict[int, list[str]] = {c: [] for c in kept}
        for row, doc in enumerate(read_documents(items, columns=["text"])):
            if row in wanted:
                texts[wanted[row]].append(doc.text[: cfg.loss_chars])
        losses = {}
        from corpuslab.evaluation.lm import load_any_checkpoint

        loaded = load_any_checkpoint(reference, "cpu")
        for c in kept:
            scored = _doc_losses(loaded, texts[c], cfg.loss_tokens)
            losses[c] = float(np.mean(scored)) if scored else 0.0
        context.log(f"  reference losses per cluster (L_i, {cfg.reference}): "
                    + ", ".join(f"{c}: {v:.3f}" for c, v in losses.items()))
        context.stats["reference_loss"] = {str(c): v for c, v in losses.items()}
        return losses


def _doc_losses(loaded: tuple[Any, Any, Any], texts: list[str], max_tokens: int) -> list[float]:
    """Mean next-token loss of each text under the reference model (one document per forward: no padding)."""
    import torch

    model, tokenizer, device = loaded
    limit = min(max_tokens, getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", max_tokens))
    out = []
    with torch.inference_mode():
        for text in texts:
            ids = tokenizer(text, truncation=True, max_length=limit)["input_ids"]
            if len(ids) < 2:
                continue
            batch = torch.tensor([ids], device=device)
            out.append(float(model(input_ids=batch, labels=batch).loss))
    return out


def loss_sample(target: int, members: list[np.ndarray], kept: list[int], losses: dict[int, float], seed: int) -> np.ndarray:
    """q_i = (L_i / sum_j L_j) N, then min(round(q_i), n_i) drawn uniformly per kept cluster in index order."""
    total = sum(losses[c] for c in kept)
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(members[c], size=min(len(members[c]), int(round(losses[c] / total * target))), replace=False)
              for c in kept]
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)


def sample_clusters(sampler: str, target: int, members: list[np.ndarray], kept: list[int], info: dict[str, Any],
                    weight: float | None, seed: int) -> np.ndarray:
    """The rows drawn, sorted: per-cluster quotas by `sampler` (see the module docstring), then
    `rng.choice(idxs, size=min(len, q), replace=False)` per kept cluster in index order."""
    sizes = np.array([len(members[c]) for c in kept], dtype=np.int64)
    spread = np.array([info["clusters"][c]["average_distance"] for c in kept], dtype=np.float64)
    total = int(sizes.sum())
    if sampler == "uniform":
        quotas = np.full(len(kept), target // len(kept), dtype=np.int64)
        quotas[: target % len(kept)] += 1
    elif sampler == "size":
        quotas = np.minimum((target * sizes / total).astype(np.int64), sizes)
    elif sampler in ("density", "low_density"):
        w = weight if weight is not None else (0.5 if sampler == "density" else 0.75)
        quotas = density_quotas(target, sizes, spread, w)
    else:
        raise ValueError(sampler)
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(members[c], size=min(len(members[c]), int(q)), replace=False) for c, q in zip(kept, quotas)]
    selected = np.concatenate(chosen) if chosen else np.zeros(0, np.int64)
    if sampler == "low_density":
        goal = int(density_quotas(target, sizes, spread, 0.5).sum())
        selected = _top_up(selected, goal, members, kept, sizes, total, rng)
    return np.sort(selected)


def density_quotas(target: int, sizes: np.ndarray, spread: np.ndarray, w: float) -> np.ndarray:
    raw = (target * (sizes / sizes.sum()) * (1 - w * spread)).astype(np.int64)
    return np.minimum(raw, sizes)


def _top_up(selected: np.ndarray, goal: int, members: list[np.ndarray], kept: list[int], sizes: np.ndarray, total: int,
            rng: np.random.Generator) -> np.ndarray:
    """The low-density variant's top-up: rem = goal - n; for kept clusters in index order add
    min(int(rem * n_i / S), unsampled_i) documents drawn uniformly from the not yet selected, decrementing
    rem after each cluster. Passes repeat until the goal is met; a pass that adds nothing (every
    int(rem * n_i / S) is 0) adds one document per cluster in index order instead."""
    taken = np.zeros(max((int(m.max()) + 1 for m in members if len(m)), default=0), bool)
    taken[selected] = True
    extra = []
    rem = goal - len(selected)
    while rem > 0:
        added = 0
        for c, size in zip(kept, sizes):
            if rem <= 0:
                break
            left = members[c][~taken[members[c]]]
            add = min(int(rem * size / total), len(left))
            if add > 0:
                picked = rng.choice(left, size=add, replace=False)
                taken[picked] = True
                extra.append(picked)
                rem -= add
                added += add
        if added == 0:
            for c in kept:
                left = members[c][~taken[members[c]]]
                if rem <= 0 or len(left) == 0:
                    continue
                picked = rng.choice(left, size=1)
                taken[picked] = True
                extra.append(picked)
                rem -= 1
                added += 1
        if added == 0:  # nothing left to draw from
            break
    return np.concatenate([selected, *extra]) if extra else selected


@recipes.register
class SemDeDup(ClusteredRecipe):
    """Within each k-means cluster, drop members nearly identical (cosine > 1 - eps) to an earlier-ranked one."""

    name = "semdedup"

    @dataclass(frozen=True)
    class Config:
        embed: EmbedConfig = field(default_factory=EmbedConfig)
        cluster: ClusterConfig = field(default_factory=ClusterConfig)
        eps: float = 0.05
        keep: Literal["hard", "easy", "random"] = "hard"
        seed: int = 42
        block: int = 1024  # rows compared at once: memory is block x cluster size

        def validate(self, prefix: str) -> None:
            require(0 < self.eps < 1, f"{prefix}.eps", self.eps, "a number in (0, 1)")
            require_int(self.block, f"{prefix}.block", 1)

    def select(self, assignment: Assignment, info: dict[str, Any], excluded: dict[int, str], emb: Embeddings,
               items: list[Path], context: CurationContext) -> list[Decision]:
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        decisions = []
        for c, rows in enumerate(assignment.members(info["k"])):
            if len(rows) < 2:
                continue
            distance = assignment.distances[rows]
            if cfg.keep == "hard":
                order = rows[np.argsort(-distance, kind="stable")]
            elif cfg.keep == "easy":
                order = rows[np.argsort(distance, kind="stable")]
            else:
                order = rows[rng.permutation(len(rows))]
            for j, i, sim in semantic_duplicates(emb.rows(order), cfg.eps, cfg.block):
                decisions.append(Decision(assignment.ids[order[j]], False, "semantic_duplicate", cluster_id=str(c),
                                          duplicate_of=assignment.ids[order[i]], similarity=sim,
                                          score=float(assignment.distances[order[j]])))
        context.log(f"  semdedup (eps {cfg.eps}, keep {cfg.keep}): dropped {len(decisions)} of {len(assignment.ids)}")
        return decisions


def semantic_duplicates(x: np.ndarray, eps: float, block: int = 1024) -> Iterable[tuple[int, int, float]]:
    """(j, i, similarity) for each ranked row j whose most similar earlier row i has similarity > 1 - eps."""
    n = len(x)
    for start in range(0, n, block):
        stop = min(n, start + block)
        sims = x[start:stop] @ x[:stop].T  # (block, stop)
        cols = np.arange(stop)
        sims[cols[None, :] >= np.arange(start, stop)[:, None]] = -np.inf  # only earlier-ranked rows count
        best = sims.argmax(axis=1)
        value = sims[np.arange(stop - start), best]
        for r in np.nonzero(value > 1 - eps)[0]:
            yield start + int(r), int(best[r]), float(value[r])
