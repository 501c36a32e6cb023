"""Plot helpers shared by the sections: matplotlib figures rendered to inline SVG, dot plots with intervals.

Figures are made with `matplotlib.figure.Figure` (no pyplot, no global state) and written as SVG with a
fixed id salt and no metadata, so an identical report gives an identical page.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from corpuslab.report.page import Page


def figure_axes(columns: int, height: float, width: float = 11.0, rows: int = 1):
    """(figure, axes in reading order) with the report's look: no top/right spines, a light grid."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes:
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(True, color="#e3e6ec", linewidth=0.7)
        ax.set_axisbelow(True)
    return fig, list(axes)


def shared_legend(fig, ax) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside upper center", ncol=min(len(labels), 8), frameon=False)


def tokens_formatter():
    from matplotlib.ticker import FuncFormatter

    def short(value: float, _position: int) -> str:
        for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
            if abs(value) >= scale:
                return f"{value / scale:g}{suffix}"
        return f"{value:g}"

    return FuncFormatter(short)


def plain_formatter():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda value, _position: f"{value:g}")


def figure(fig, caption: str) -> str:
    return f"<figure>\n{svg(fig)}\n<figcaption>{caption}</figcaption>\n</figure>"


def svg(fig) -> str:
    """The figure as inline SVG: text kept as text, no XML prolog, namespaces or metadata (none of which
    inline SVG in HTML needs), and a fixed id salt so an identical report gives an identical page."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "corpuslab", "font.size": 9.5,
                                "font.family": ["DejaVu Sans", "sans-serif"], "axes.titlesize": 10.5}):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.DOTALL)
    text = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", text)
    return text.replace("xlink:href", "href")


def dot_plot(ax, page: Page, groups: list[str], stat: Callable[[str, str], dict[str, Any] | None]) -> None:
    """Mean with its interval per (group, arm), arms side by side: close values stay readable, unlike bars from 0."""
    x = np.arange(len(groups))
    spread = 0.6 / max(len(page.names), 1)
    for i, name in enumerate(page.names):
        stats = [stat(name, g) or {"mean": None, "ci95": None} for g in groups]
        means = np.array([s["mean"] if s["mean"] is not None else np.nan for s in stats])
        offsets = x + (i - (len(page.names) - 1) / 2) * spread
        ax.errorbar(offsets, means, yerr=error_bars(stats, means), fmt="o", color=page.colors[name], label=name,
                    markersize=6, capsize=3, linewidth=1.2)
        seed_dots(ax, offsets + spread * 0.22, stats, color=page.colors[name])
    crowded = len(groups) * max((len(g) for g in groups), default=0) > 36  # the labels would run into each other
    ax.set_xticks(x, groups, rotation=25 if crowded else 0, ha="right" if crowded else "center",
                  rotation_mode="anchor")
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.grid(axis="x", visible=False)


def seed_dots(ax, offsets: np.ndarray, stats: list[dict[str, Any]], color: str = "#1d2330") -> None:
    """Each seed's value as a small dot, so a reader sees the spread behind a mean of few seeds."""
    points = [(x, v) for x, s in zip(offsets, stats) if len(s.get("seeds") or []) > 1 for v in s["seeds"]]
    if points:
        ax.scatter(*zip(*points), s=16, color=color, edgecolors="white", linewidths=0.5, zorder=3)


def error_bars(stats: list[dict[str, Any]], means: np.ndarray) -> np.ndarray:
    """2 x n asymmetric whiskers from each stat's ci95 (0 where there is none)."""
    lower = [m - s["ci95"][0] if s.get("ci95") else 0.0 for s, m in zip(stats, means)]
    upper = [s["ci95"][1] - m if s.get("ci95") else 0.0 for s, m in zip(stats, means)]
    return np.nan_to_num(np.array([lower, upper], dtype=float))


def seed_mean(curves: Sequence[Sequence[tuple[float, float]]]) -> tuple[np.ndarray, np.ndarray]:
    """Mean over seeds at the x values every seed has (seeds of one arm log at the same steps)."""
    common = set.intersection(*({x for x, _ in c} for c in curves)) if curves else set()
    xs = np.array(sorted(common), dtype=float)
    ys = np.array([np.mean([dict(c)[x] for c in curves]) for x in xs], dtype=float)
    return xs, ys


def seed_band(curves: Sequence[Sequence[tuple[float, float]]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, min over seeds, max over seeds) at the x values every seed has: the spread a mean curve hides."""
    common = set.intersection(*({x for x, _ in c} for c in curves)) if curves else set()
    xs = np.array(sorted(common), dtype=float)
    values = np.array([[dict(c)[x] for c in curves] for x in xs], dtype=float).reshape(len(xs), len(curves))
    return xs, values.min(axis=1) if len(xs) else xs, values.max(axis=1) if len(xs) else xs


def value_axis(ax, values: Sequence[float], axis: str = "y") -> None:
    """Linear unless the plotted values are all positive and span a factor of 10 or more; a log axis labels its
    decades only (1e+17, not 2.1x10^2 on minor ticks) and a linear one writes plain numbers without an offset."""
    from matplotlib.ticker import LogFormatterSciNotation, NullFormatter, ScalarFormatter

    finite = [v for v in values if v is not None and math.isfinite(v)]
    target = ax.yaxis if axis == "y" else ax.xaxis
    if finite and min(finite) > 0 and max(finite) / min(finite) >= 10:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
        target.set_major_formatter(LogFormatterSciNotation())
        target.set_minor_formatter(NullFormatter())
        return
    (ax.set_yscale if axis == "y" else ax.set_xscale)("linear")
    formatter = ScalarFormatter(useOffset=False)
    formatter.set_powerlimits((-4, 6))
    target.set_major_formatter(formatter)


def curve_points(replicate: dict[str, Any], field: str) -> list[tuple[float, float]]:
    """(tokens, value) of every curve record of a replicate where `field` is a finite number."""
    return [(float(c["tokens"]), float(c[field])) for c in replicate.get("curve", [])
            if c.get(field) is not None and math.isfinite(c[field])]
