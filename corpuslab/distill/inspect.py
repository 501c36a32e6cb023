"""`corpuslab clusters`: build (or reuse) an arm's embed and cluster stages and print the clusters for a
person to scan, as the MiniPile authors did with cluster_info_for_inspection.json before choosing which
clusters to exclude. The same cards are in the HTML report."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from typing import Any

from corpuslab.errors import ConfigError


def clustered_arms(cfg) -> list[int]:
    from corpuslab.curation.recipes.distill import ClusteredRecipe

    return [i for i in range(len(cfg.runs)) if isinstance(cfg.arm_recipe(i), ClusteredRecipe)]


def show_clusters(experiment, arms: list[int], print_: Callable[[str], None] = print) -> dict[str, Any]:
    """Print the clusters of the first clustered arm among `arms` (all arms when empty); return clusters.json."""
    from corpuslab.curation.recipes import CurationContext
    from corpuslab.distill.cluster import read_clusters

    cfg = experiment.cfg
    candidates = [i for i in clustered_arms(cfg) if not arms or i in arms]
    if not candidates:
        raise ConfigError("--arm" if arms else "runs", [cfg.runs[i].name for i in arms] if arms else [r.name for r in cfg.runs],
                          "an arm whose recipe clusters documents (minipile, semdedup)")
    index = candidates[0]
    recipe = cfg.arm_recipe(index)
    prepared = experiment.prepare()
    items = prepared.train_shards(cfg.canaries.placement == "before_curation")
    context = CurationContext(experiment.executor, experiment.log, cfg.seed, experiment.root / "scratch", stages=experiment.stages)
    _, clusters = recipe.shared_stages(items, context)
    info = read_clusters(clusters.path)
    excluded = recipe.excluded_clusters(info)
    print_(format_clusters(info, excluded, f"arm {cfg.runs[index].name}: {clusters.path}"))
    return info


def format_clusters(info: dict[str, Any], excluded: dict[int, str], title: str, width: int = 110) -> str:
    lines = [title, f"{info['k']} clusters over {info['documents']} documents"
             + (f"; purity vs categories {info['purity']:.3f}, NMI {info['nmi']:.3f}" if info.get("purity") is not None else "")]
    for c in info["clusters"]:
        flag = f"  EXCLUDED ({excluded[c['cluster']]})" if c["cluster"] in excluded else ""
        lines.append("")
        lines.append(f"cluster {c['cluster']}: {c['total_examples']} docs, mean distance {c['average_distance']:.3f}, "
                     f"sum {c['sum_distance']:.1f}, duplicate rate {c['duplicate_rate']:.2f}{flag}")
        if c.get("top_terms"):
            lines.append(f"  top terms: {', '.join(c['top_terms'])}")
        if c.get("categories"):
            lines.append("  categories: " + ", ".join(f"{k} {v}" for k, v in list(c["categories"].items())[:5]))
        for label in ("closest", "farthest"):
            for doc in c[label]:
                excerpt = textwrap.shorten(doc["text"] or "", width=width - 24, placeholder=" …")
                lines.append(f"  {label[:4]} {doc['distance']:.3f}  {excerpt}")
    return "\n".join(lines)
