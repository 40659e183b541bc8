"""Label efficiency: the linear probe trained on a stratified fraction of the train labels (e.g. 1 %, 10 %,
100 %), the usual semi-supervised reading of an SSL representation (Chen et al., 2020, SimCLR §4.2; SCARF/VIME
report the same on tabular data). For each seed the labelled subset is a fresh stratified draw, so the spread covers
which samples got labels; inside each subset the probe's decay is chosen on a validation part of that subset.
100 % is the ordinary probe over ``seeds`` validation carves. The test split is only scored.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from omnissl.core.registry import EVALUATIONS
from omnissl.eval.linear_probe import linear_probe
from omnissl.eval.metrics import mean_metrics
from omnissl.eval.protocol import Cell, EvalContext, Protocol, Row, SingleTowerProtocol, cell


def label_subset(labels: Tensor, fraction: float, *, seed: int, min_per_class: int = 1) -> Tensor:
    """Sorted indices of a stratified ``fraction`` of ``labels (N,)``: each class keeps its share, at least
    ``min_per_class`` rows (all of them when it has fewer)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"label fraction must be in (0, 1], got {fraction}")
    if fraction == 1:
        return torch.arange(labels.shape[0])
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for label in labels.unique():
        members = (labels == label).nonzero().flatten()
        take = min(len(members), max(min_per_class, int(round(fraction * len(members)))))
        chosen.append(members[torch.randperm(len(members), generator=generator)[:take]])
    return torch.cat(chosen).sort().values


def draw_seed(seed: int) -> int:
    """The generator seed of label draw ``seed`` (shared by every row, so rows see the same labelled samples)."""
    return 1000 * seed + 17


def fraction_label(fraction: float) -> str:
    return f"{100 * fraction:g}% labels"


def probe_at_fractions(train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor], *, fractions: Sequence[float],
                       seeds: int = 3, max_iter: int = 200, weight_decays: list[float] | None = None,
                       val_fraction: float = 0.1, num_classes: int | None = None,
                       min_per_class: int = 1) -> dict[str, dict[str, Any]]:
    """``{"1% labels": {"mean", "std", "seeds", "per_seed", "labels", "metrics"}, ...}``."""
    (x_train, y_train), (x_test, y_test) = train, test
    table = {}
    for fraction in fractions:
        settings = {"max_iter": max_iter, "weight_decays": weight_decays, "val_fraction": val_fraction,
                    "num_classes": num_classes}
        if fraction >= 1:
            result = linear_probe(x_train, y_train, x_test, y_test, seeds=seeds, **settings)
            scores, metrics, size = result.per_seed, [result.metrics], len(y_train)
        else:
            scores, metrics, size = [], [], 0
            for seed in range(seeds):
                rows = label_subset(y_train, fraction, seed=draw_seed(seed), min_per_class=min_per_class)
                result = linear_probe(x_train[rows], y_train[rows], x_test, y_test, seeds=1, **settings)
                scores += result.per_seed
                metrics.append(result.metrics)
                size = len(rows)
        spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
        table[fraction_label(fraction)] = {"mean": statistics.fmean(scores), "std": spread, "seeds": len(scores),
                                           "per_seed": scores, "labels": size, "metrics": mean_metrics(metrics)}
    return table


class LabelEfficiencyProtocol(SingleTowerProtocol):
    protocol_name = "label_efficiency"

    def measure(self, ctx: EvalContext, row: Row) -> Cell:
        train, test = ctx.features(row, "train"), ctx.features(row, "test")
        curve = probe_at_fractions(train, test, num_classes=ctx.num_classes, **self.settings)
        low = fraction_label(min(self.settings["fractions"]))
        return cell(low, curve[low], columns=curve, details={"dim": int(train[0].shape[1]),
                                                             "labels": {k: v["labels"] for k, v in curve.items()}})


@EVALUATIONS.register("label_efficiency", description="linear probe on 1% / 10% / 100% of the train labels "
                                                      "(stratified draws, seeds = draws)")
def build_label_efficiency(*, fractions: list[float] | None = None, seeds: int = 3, max_iter: int = 200,
                           weight_decays: list[float] | None = None, val_fraction: float = 0.1,
                           min_per_class: int = 1) -> Protocol:
    """``fractions`` of the train labels (default [0.01, 0.1, 1.0]); the probe settings as ``linear_probe``."""
    chosen = sorted(fractions or [0.01, 0.1, 1.0])
    if any(not 0 < f <= 1 for f in chosen) or seeds < 1 or min_per_class < 1:
        raise ValueError(f"fractions must lie in (0, 1], seeds and min_per_class ≥ 1 (got {chosen}, {seeds}, "
                         f"{min_per_class})")
    return LabelEfficiencyProtocol(fractions=chosen, seeds=seeds, max_iter=max_iter,
                                   weight_decays=weight_decays or [0.0, 1e-4, 1e-3, 1e-2], val_fraction=val_fraction,
                                   min_per_class=min_per_class)
