"""The tabular field's strong supervised baseline beside the label-scarce probe: gradient-boosted trees
(scikit-learn's ``HistGradientBoostingClassifier``, native categorical splits on the category codes, default
settings; Grinsztajn et al., 2022, "Why do tree-based models still outperform deep learning on tabular data?").

Every representation row goes through the core ``label_efficiency`` protocol (one implementation:
:mod:`omnissl.eval.label_efficiency`); the ``tabular_gbdt_baseline`` protocol adds a "GBDT (raw table)" row under
the same column, trained on the same stratified label draws (same seeds), so the two read side by side. The raw
table under logistic regression is the table's ordinary raw-input row.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from omnissl.core.registry import EVALUATIONS
from omnissl.data.tensors import Subset
from omnissl.eval.label_efficiency import draw_seed, fraction_label, label_subset
from omnissl.eval.metrics import classification_metrics, mean_metrics
from omnissl.eval.protocol import Cell, EvalContext, Protocol, cell

MIN_PER_CLASS = 2  # a class with one labelled row cannot be validated on; the tabular recipes use 2


def gbdt_at_fractions(train: tuple[np.ndarray, np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray, np.ndarray],
                      *, fractions: Sequence[float], seeds: int = 3,
                      min_per_class: int = MIN_PER_CLASS) -> dict[str, dict[str, Any]]:
    """(numeric ``(N, F_num)``, category codes ``(N, F_cat)``, labels ``(N,)``) per split →
    ``{"1% labels": {"mean", "std", "seeds", "per_seed", "labels", "metrics"}, ...}`` on the probes' label draws."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    (num_tr, cat_tr, y_tr), (num_te, cat_te, y_te) = train, test
    x_tr, x_te = np.concatenate([num_tr, cat_tr], 1), np.concatenate([num_te, cat_te], 1)
    is_cat = np.array([False] * num_tr.shape[1] + [True] * cat_tr.shape[1])
    table = {}
    for fraction in fractions:
        scores, measured, size = [], [], 0
        for seed in range(seeds if fraction < 1 else 1):
            rows = label_subset(torch.from_numpy(y_tr), fraction, seed=draw_seed(seed),
                                min_per_class=min_per_class).numpy()
            model = HistGradientBoostingClassifier(categorical_features=is_cat if is_cat.any() else None,
                                                   random_state=seed)
            model.fit(x_tr[rows], y_tr[rows])
            predicted = model.predict(x_te)
            scores.append(float((predicted == y_te).mean()))
            measured.append(classification_metrics(torch.from_numpy(predicted), torch.from_numpy(y_te)))
            size = len(rows)
        table[fraction_label(fraction)] = {"mean": statistics.fmean(scores), "seeds": len(scores),
                                           "std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
                                           "per_seed": scores, "labels": size, "metrics": mean_metrics(measured)}
    return table


def table_arrays(dataset: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(numeric, categorical, labels) numpy arrays of a ``TabularDataset`` or a ``Subset`` of one."""
    indices = None
    if isinstance(dataset, Subset):
        dataset, indices = dataset.dataset, torch.as_tensor(dataset.indices, dtype=torch.long)
    if not all(hasattr(dataset, a) for a in ("numeric", "categorical", "labels")):
        raise ValueError(f"tabular_gbdt_baseline needs a tabular dataset, got {type(dataset).__name__}")
    parts = [dataset.numeric, dataset.categorical, dataset.labels]
    return tuple((p if indices is None else p[indices]).numpy() for p in parts)  # type: ignore[return-value]


class TabularGbdtBaseline(Protocol):
    scope = "baseline"
    compares_with = "label_efficiency"

    def __init__(self, **settings: Any) -> None:
        super().__init__("tabular_gbdt_baseline", settings)

    def baseline_rows(self, ctx: EvalContext) -> list[tuple[str, Cell]]:
        curve = gbdt_at_fractions(table_arrays(ctx.train_set), table_arrays(ctx.test_set), **self.settings)
        low = fraction_label(min(self.settings["fractions"]))
        return [("GBDT (raw table)", cell(low, curve[low], columns=curve))]


@EVALUATIONS.register("tabular_gbdt_baseline", modality="tabular",
                      description="gradient-boosted trees on the raw table at the label fractions (strong baseline)")
def build_tabular_gbdt_baseline(*, fractions: list[float] | None = None, seeds: int = 3,
                                min_per_class: int = MIN_PER_CLASS) -> Protocol:
    """``fractions`` and ``seeds`` as the ``label_efficiency`` protocol beside it (the same label draws)."""
    chosen = sorted(fractions or [0.01, 0.1, 1.0])
    if any(not 0 < f <= 1 for f in chosen) or seeds < 1:
        raise ValueError(f"fractions must lie in (0, 1] and seeds ≥ 1 (got {chosen}, {seeds})")
    return TabularGbdtBaseline(fractions=chosen, seeds=seeds, min_per_class=min_per_class)
