"""Training-curve plots from ``metrics.jsonl`` (matplotlib, Agg backend: no display, no network).

Every function returns the written PNG path, or ``None`` when the run logged nothing the plot needs, so a
report of a short run simply has fewer figures instead of empty axes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: reports are written on servers and in CI
import matplotlib.pyplot as plt

from omnissl.errors import DataError

Record = dict[str, Any]


def read_metrics(path: Path) -> list[Record]:
    """One JSON object per line; a malformed line is an error naming the file and line (never skipped)."""
    if not path.is_file():
        return []
    records = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            # A run killed mid-write leaves a torn last line; anything else is a corrupt file.
            if number == len(lines):
                continue
            raise DataError(f"{path}: line {number} is not JSON ({error})") from error
        if not isinstance(record, dict) or "step" not in record:
            raise DataError(f"{path}: line {number} has no 'step' key")
        records.append(record)
    return records


def series(records: list[Record], key: str) -> tuple[list[int], list[float]]:
    """``(steps, values)`` of ``key`` over the records that have it, in step order."""
    pairs = sorted((int(r["step"]), float(r[key])) for r in records if key in r and r[key] is not None)
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_loss_lr(records: list[Record], path: Path) -> Path | None:
    """Loss (left axis, with objective-specific terms) and learning rate (right axis) against step."""
    steps, loss = series(records, "loss")
    if not steps:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.plot(steps, loss, label="loss", color="tab:blue")
    skip = {"step", "time", "loss", "lr", "samples_per_s"}
    terms = sorted({k for r in records for k in r if k not in skip and "/" not in k and not k.startswith("knn_")})
    for term in terms[:4]:
        s, v = series(records, term)
        if s and v != series(records, "loss")[1]:
            ax.plot(s, v, label=term, linewidth=1, alpha=0.7)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(loc="upper left", fontsize=8)
    lr_steps, lr = series(records, "lr")
    if lr_steps:
        twin = ax.twinx()
        twin.plot(lr_steps, lr, color="tab:orange", linestyle="--", label="learning rate")
        twin.set_ylabel("learning rate", color="tab:orange")
    ax.set_title("training loss and learning rate")
    return _save(fig, path)


def plot_knn(records: list[Record], path: Path) -> Path | None:
    """k-NN top-1 accuracy of the monitor over training (keys ``knn_top1_k<k>``)."""
    keys = sorted({k for r in records for k in r if k.startswith("knn_top1")})
    if not keys:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for key in keys:
        s, v = series(records, key)
        ax.plot(s, [100 * x for x in v], marker="o", label=key)
    ax.set_xlabel("step")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.legend(fontsize=8)
    ax.set_title("k-NN accuracy during training")
    return _save(fig, path)


def plot_collapse(records: list[Record], path: Path) -> Path | None:
    """Collapse monitor: per-dimension std of normalised embeddings (with the 1/√D ideal) and effective rank."""
    s_std, std = series(records, "collapse/embedding_std")
    s_rank, rank = series(records, "collapse/effective_rank")
    if not s_std and not s_rank:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    left.plot(s_std, std, label="embedding std", color="tab:green")
    s_ideal, ideal = series(records, "collapse/embedding_std_ideal")
    if s_ideal:
        left.plot(s_ideal, ideal, linestyle=":", color="grey", label="ideal 1/√D")
    left.set_xlabel("step")
    left.set_title("embedding std (0 = collapsed)")
    left.legend(fontsize=8)
    right.plot(s_rank, rank, color="tab:purple")
    right.set_xlabel("step")
    right.set_title("effective rank")
    return _save(fig, path)


def plot_label_efficiency(curves: dict[str, dict[str, tuple[float, float]]], path: Path) -> Path | None:
    """Probe accuracy (mean ± std) against the fraction of labels, one line per encoder row."""
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for name, points in curves.items():
        fractions = sorted(points, key=float)
        xs = [100 * float(f) for f in fractions]
        means = [100 * points[f][0] for f in fractions]
        stds = [100 * points[f][1] for f in fractions]
        ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("labels used (%)")
    ax.set_ylabel("linear probe accuracy (%)")
    ax.legend(fontsize=8)
    ax.set_title("label efficiency")
    return _save(fig, path)
