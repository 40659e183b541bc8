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
from matplotlib.ticker import MaxNLocator

from omnissl.core.errors import DataError

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


# Up to this many points a series also gets markers: a line through one point draws nothing (the empty frames of
# a 2-step run), and a few markers show where the measurements really are.
MARKER_POINTS = 30


def draw(ax: Any, xs: list[int], ys: list[float], **style: Any) -> Any:
    """``ax.plot`` that stays visible for short series (markers up to :data:`MARKER_POINTS` points)."""
    if len(xs) <= MARKER_POINTS:
        style.setdefault("marker", "o")
        style.setdefault("markersize", 4)
    return ax.plot(xs, ys, **style)[0]


def step_axis(ax: Any, steps: list[int]) -> None:
    """Whole steps only, over at least a few steps: one logged step otherwise gets ticks at 1.900 … 2.100."""
    if steps and max(steps) - min(steps) < 4:
        middle = (max(steps) + min(steps)) / 2
        ax.set_xlim(max(0.0, middle - 2.5), middle + 2.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("step")


def plot_loss_lr(records: list[Record], path: Path) -> Path | None:
    """Loss (left axis, with objective-specific terms) and learning rate (right axis) against step."""
    steps, loss = series(records, "loss")
    if not steps:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.6))
    handles = [draw(ax, steps, loss, label="loss", color="tab:blue")]
    skip = {"step", "time", "loss", "lr", "samples_per_s"}
    terms = sorted({k for r in records for k in r if k not in skip and "/" not in k and not k.startswith("knn_")})
    for term in terms[:4]:
        s, v = series(records, term)
        if s and v != loss:
            handles.append(draw(ax, s, v, label=term, linewidth=1, alpha=0.7))
    step_axis(ax, steps)
    ax.set_ylabel("loss")
    lr_steps, lr = series(records, "lr")
    if lr_steps:
        twin = ax.twinx()
        # Crosses, so a single LR point does not hide the loss point drawn at the same place.
        handles.append(draw(twin, lr_steps, lr, color="tab:orange", linestyle="--", marker="x",
                            label="learning rate (right)"))
        twin.set_ylabel("learning rate", color="tab:orange")
    # One legend for both axes, above the plot: inside it covered the first loss points.
    ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.02), ncol=len(handles), fontsize=8,
              frameon=False)
    ax.set_title("training loss and learning rate", pad=22)
    return _save(fig, path)


def plot_knn(records: list[Record], path: Path, *, references: dict[str, dict[int, float]] | None = None) -> Path | None:
    """k-NN top-1 accuracy of the monitor over training (keys ``knn_top1_k<k>``), beside the final evaluation's
    random-init and raw-input k-NN at the same k as dotted lines: without them 95.6–96.4 % says nothing.

    references: ``{row name: {k: accuracy}}`` (from ``eval.json``; absent before the run was evaluated).
    """
    keys = sorted({k for r in records for k in r if k.startswith("knn_top1")})
    if not keys:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.2))
    colours = iter(plt.get_cmap("tab10").colors)
    shown: list[int] = []
    for key in keys:
        k = int(key.removeprefix("knn_top1_k")) if key.removeprefix("knn_top1_k").isdigit() else None
        s, v = series(records, key)
        colour = next(colours)
        draw(ax, s, [100 * x for x in v], color=colour, label=f"this run (monitor, k={k})" if k else key)
        shown += s
        for (name, by_k), style in zip((references or {}).items(), (":", "--", "-.")):
            if k in by_k:
                ax.axhline(100 * by_k[k], color=colour, linestyle=style, linewidth=1,
                           label=f"{name} (final eval, k={k})")
    step_axis(ax, shown)
    ax.set_ylabel("top-1 accuracy (%)")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title("k-NN accuracy during training")
    return _save(fig, path)


def plot_collapse(records: list[Record], path: Path) -> Path | None:
    """Collapse monitor: per-dimension std of normalised embeddings (with the 1/√D ideal) and effective rank."""
    s_std, std = series(records, "collapse/embedding_std")
    s_rank, rank = series(records, "collapse/effective_rank")
    if not s_std and not s_rank:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    draw(left, s_std, std, label="embedding std", color="tab:green")
    _, ideal = series(records, "collapse/embedding_std_ideal")
    if ideal:  # 1/√D is one number per run: a horizontal line, visible even when the monitor logged once
        left.axhline(ideal[-1], linestyle=":", color="grey", label=f"ideal 1/√D = {ideal[-1]:.3f}")
    step_axis(left, s_std)
    left.set_title("embedding std (0 = collapsed)")
    left.legend(fontsize=8)
    draw(right, s_rank, rank, color="tab:purple")
    step_axis(right, s_rank)
    right.set_title("effective rank")
    return _save(fig, path)


def plot_label_efficiency(curves: dict[str, dict[str, tuple[float, float]]], path: Path) -> Path | None:
    """Probe accuracy (mean ± std) against the fraction of labels, one line per encoder row."""
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.6))
    count = len(curves)
    for index, (name, points) in enumerate(curves.items()):
        fractions = sorted(points, key=float)
        # Identical rows (two runs of one recipe) would hide each other: dodge each row a little along the log x.
        dodge = 1 + 0.04 * (index - (count - 1) / 2)
        xs = [100 * float(f) * dodge for f in fractions]
        means = [100 * points[f][0] for f in fractions]
        stds = [100 * points[f][1] for f in fractions]
        ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("labels used (%)")
    ax.set_ylabel("linear probe accuracy (%)")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title("label efficiency")
    return _save(fig, path)
