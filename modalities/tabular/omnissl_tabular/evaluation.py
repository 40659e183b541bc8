"""Label-scarce evaluation for tabular SSL: probes trained on 1 % / 10 % / 100 % of the train labels.

Every row — SSL features, random-init features, raw preprocessed features — goes through the *same* probe, the
core L2 logistic regression (:func:`omnissl.eval.linear_probe.linear_probe`, decay chosen on a validation part of
the labelled subset). Gradient-boosted trees (scikit-learn's ``HistGradientBoostingClassifier``, native
categorical splits on the category codes, default settings) are the strong supervised baseline. For each seed the
labelled subset is a fresh stratified draw, so the spread covers which rows got labels.
"""

from __future__ import annotations

import statistics
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from omnissl.eval.linear_probe import linear_probe


def label_subset(labels: Tensor, fraction: float, *, seed: int, min_per_class: int = 2) -> Tensor:
    """Indices of a stratified ``fraction`` of the rows (each class keeps its share, at least ``min_per_class``)."""
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


def _summary(scores: list[float]) -> dict[str, Any]:
    return {"mean": statistics.fmean(scores), "std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
            "per_seed": scores}


def probe_at_fractions(train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor], *, fractions: Sequence[float],
                       seeds: int = 3, max_iter: int = 200, weight_decays: list[float] | None = None,
                       val_fraction: float = 0.1, num_classes: int | None = None) -> dict[str, dict[str, Any]]:
    """``{"1%": {"mean", "std", "per_seed"}, ...}``: one probe per (fraction, seed) on a stratified label subset."""
    (x_train, y_train), (x_test, y_test) = train, test
    table = {}
    for fraction in fractions:
        if fraction == 1:  # one label set; the seeds vary the probe's validation split (the core protocol)
            scores = linear_probe(x_train, y_train, x_test, y_test, seeds=seeds, max_iter=max_iter,
                                  weight_decays=weight_decays, val_fraction=val_fraction,
                                  num_classes=num_classes).per_seed
        else:
            scores = []
            for seed in range(seeds):
                rows = label_subset(y_train, fraction, seed=1000 * seed + 17)
                scores += linear_probe(x_train[rows], y_train[rows], x_test, y_test, seeds=1, max_iter=max_iter,
                                       weight_decays=weight_decays, val_fraction=val_fraction,
                                       num_classes=num_classes).per_seed
        table[f"{fraction:.0%}"] = _summary(scores)
    return table


def gbdt_at_fractions(train: tuple[np.ndarray, np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray, np.ndarray],
                      *, fractions: Sequence[float], seeds: int = 3) -> dict[str, dict[str, Any]]:
    """``HistGradientBoostingClassifier`` on (numeric, category codes, labels); same label subsets as the probes."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    (num_tr, cat_tr, y_tr), (num_te, cat_te, y_te) = train, test
    x_tr, x_te = np.concatenate([num_tr, cat_tr], 1), np.concatenate([num_te, cat_te], 1)
    is_cat = np.array([False] * num_tr.shape[1] + [True] * cat_tr.shape[1])
    table = {}
    for fraction in fractions:
        scores = []
        for seed in range(seeds if fraction < 1 else 1):
            rows = label_subset(torch.from_numpy(y_tr), fraction, seed=1000 * seed + 17).numpy()
            model = HistGradientBoostingClassifier(categorical_features=is_cat if is_cat.any() else None,
                                                   random_state=seed)
            model.fit(x_tr[rows], y_tr[rows])
            scores.append(float((model.predict(x_te) == y_te).mean()))
        table[f"{fraction:.0%}"] = _summary(scores)
    return table
