"""One table across experiments: `corpuslab report DIR... [--out FILE]`.

Each DIR is an experiment folder (it holds `summary.tsv` or `report.json`), or a folder whose direct
subfolders are, such as an `output_dir`. Rows are each experiment's `summary.tsv` rows (one per arm),
which are written by the run itself and so read the same whatever corpuslab version reads them; where
`report.json` is there too, the 95% interval half-width across seeds is added next to the loss and
bits-per-byte columns. An experiment with only `report.json` gets its rows rebuilt from it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from corpuslab.atomic import atomic_file
from corpuslab.errors import InputError

SUMMARY = "summary.tsv"
REPORT = "report.json"
# summary.tsv column -> aggregate key whose interval half-width follows it.
INTERVALS = {"val_loss": "val.loss", "val_bpb": "val.bits_per_byte", "test_loss": "test.loss",
             "test_bpb": "test.bits_per_byte"}


def is_experiment_dir(path: Path) -> bool:
    return (path / SUMMARY).is_file() or (path / REPORT).is_file()


def find_experiments(paths: Sequence[str | Path]) -> list[Path]:
    """The experiment folders named by `paths`, in order: each path itself, or its experiment subfolders."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            raise InputError(str(path), "not a directory")
        if is_experiment_dir(path):
            found.append(path)
            continue
        children = sorted(child for child in path.iterdir() if child.is_dir() and is_experiment_dir(child))
        if not children:
            raise InputError(str(path), f"holds no {SUMMARY} or {REPORT}, nor do its subfolders: "
                             "run the experiment first")
        found.extend(children)
    return found


def experiment_rows(folder: Path) -> list[dict[str, Any]]:
    """One row per arm of the experiment in `folder`, starting with `experiment`, ending with `dir`."""
    report = _read_report(folder)
    name = report.get("experiment") if report else None
    if (folder / SUMMARY).is_file():
        with open(folder / SUMMARY, newline="") as handle:
            arms = list(csv.DictReader(handle, delimiter="\t"))
    elif report is not None:
        from corpuslab.report.build import summary_rows

        arms = summary_rows(report)[1]
    else:  # pragma: no cover - is_experiment_dir guarantees one of the two
        arms = []
    rows = []
    for arm in arms:
        row: dict[str, Any] = {"experiment": name or folder.name}
        for column, value in arm.items():
            row[column] = value
            if column in INTERVALS and report is not None:
                row[f"{column}_ci95"] = _half_width(report, arm.get("arm"), INTERVALS[column])
        row["dir"] = str(folder)
        rows.append(row)
    return rows


def aggregate(paths: Sequence[str | Path]) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, rows) of every arm of every experiment under `paths`; columns in order of first appearance,
    so experiments written by different versions line up where their columns agree."""
    folders = find_experiments(paths)
    labels = run_labels(folders)
    rows = []
    for folder in folders:
        for row in experiment_rows(folder):
            row["experiment"] = labels.get(folder, row["experiment"])
            rows.append(row)
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(k for k in row if k != "dir"))
    return [*columns, "dir"], rows


IGNORED_IN_LABELS = ("output_dir", "logging.", "cache.")  # where a run was written or logged says nothing about it


def run_labels(folders: Sequence[Path]) -> dict[Path, str]:
    """Experiments that share a name (runs of one experiment with other settings, `runs/<time>/` copies) are
    labelled by what differs between their configs, e.g. `default (seeds=[0, 1, 2])`; others by their name."""
    configs: dict[Path, dict[str, Any]] = {}
    names: dict[Path, str] = {}
    for folder in folders:
        report = _read_report(folder) or {}
        names[folder] = str(report.get("experiment") or folder.name)
        configs[folder] = flatten_config(report.get("config") or {})
    labels: dict[Path, str] = {}
    for name in set(names.values()):
        same = [f for f in folders if names[f] == name]
        if len(same) < 2:
            continue
        keys = sorted({k for f in same for k in configs[f]})
        differing = [k for k in keys if not k.startswith(IGNORED_IN_LABELS)
                     and len({json.dumps(configs[f].get(k), sort_keys=True) for f in same}) > 1]
        for f in same:
            shown = ", ".join(f"{k}={configs[f].get(k)}" for k in differing[:4]) + (", ..." if len(differing) > 4 else "")
            labels[f] = f"{name} ({shown or f.name})"
    return labels


def flatten_config(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"training.lr": 0.002, ...}; lists (arms, seeds) stay whole values."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flatten_config(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def write_tsv(path: str | Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    path = Path(path)
    with atomic_file(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, delimiter="\t", extrasaction="ignore", restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})


def format_table(columns: list[str], rows: list[dict[str, Any]]) -> str:
    """Columns padded to their widest cell; numbers right-aligned."""
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    numeric = [all(_is_number(r[i]) or r[i] == "" for r in cells) for i in range(len(columns))]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells])


def run_aggregate(paths: Sequence[str | Path], out: str | Path | None = None) -> tuple[list[str], list[dict[str, Any]]]:
    """Print the table of every experiment under `paths`; write it as TSV to `out` when given."""
    columns, rows = aggregate(paths)
    print(format_table(columns, rows))
    if out is not None:
        write_tsv(out, columns, rows)
    return columns, rows


def _read_report(folder: Path) -> dict[str, Any] | None:
    path = folder / REPORT
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(str(path), f"not valid JSON ({err.msg})", line=err.lineno) from None


def _half_width(report: dict[str, Any], arm: str | None, key: str) -> float | None:
    stats = report.get("arms", {}).get(arm or "", {}).get("aggregate", {}).get(key) or {}
    interval = stats.get("ci95")
    return round((interval[1] - interval[0]) / 2, 4) if interval else None


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True
