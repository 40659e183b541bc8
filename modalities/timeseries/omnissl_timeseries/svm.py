"""The evaluation protocol of the published time-series tables (T-Loss, TS2Vec, TS-TCC on UCR/UEA): an RBF-kernel
SVM on frozen instance representations, with C chosen by cross-validation on the train split only.

As in TS2Vec's ``fit_svm``: C ∈ {10⁻⁴ … 10⁴, ∞}, ``gamma='scale'``, 5-fold stratified CV (fewer folds when the
rarest class has fewer than 5 series). Like that code, no CV is run and C = ∞ (hard margin) is used when the train
split is small: fewer than ``cv_min_train`` series (50 there) or fewer than ``cv_min_per_class`` series per class
on average (``N // classes < 5`` there), and always when some class has fewer than 2 series (no stratified fold
possible). The result records which (``folds = 0``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from torch import Tensor

from omnissl.core.registry import EVALUATIONS
from omnissl.eval.metrics import classification_metrics
from omnissl.eval.protocol import Cell, EvalContext, Protocol, Row, cell

C_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4, math.inf)


@dataclass
class SVMResult:
    accuracy: float
    C: float
    cv_accuracy: float | None
    folds: int
    metrics: dict[str, float] = field(default_factory=dict)  # top1 / macro-F1 / balanced accuracy on test

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _numpy(values: Tensor | np.ndarray) -> np.ndarray:
    return values.detach().cpu().numpy() if isinstance(values, Tensor) else np.asarray(values)


def svm_accuracy(train_features: Tensor | np.ndarray, train_labels: Tensor | np.ndarray,
                 test_features: Tensor | np.ndarray, test_labels: Tensor | np.ndarray, *,
                 grid: tuple[float, ...] = C_GRID, max_folds: int = 5, seed: int = 0, cv_min_train: int = 50,
                 cv_min_per_class: int = 5) -> SVMResult:
    """Fit an RBF SVM on ``train_features (N, D)``, choose C by stratified CV on the train split (C = ∞ without CV
    on small splits, see the module docstring), report test accuracy. Test data are used only for the final
    score."""
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.svm import SVC

    x_train, y_train = _numpy(train_features).astype(np.float64), _numpy(train_labels)
    x_test, y_test = _numpy(test_features).astype(np.float64), _numpy(test_labels)
    if not (np.isfinite(x_train).all() and np.isfinite(x_test).all()):
        raise ValueError("svm_accuracy: features contain NaN/Inf")
    counts = np.unique(y_train, return_counts=True)[1]
    folds = int(min(max_folds, counts.min()))
    small = len(y_train) < cv_min_train or len(y_train) // len(counts) < cv_min_per_class
    if folds < 2 or small:
        model = SVC(C=math.inf, gamma="scale").fit(x_train, y_train)
        return SVMResult(accuracy=float(model.score(x_test, y_test)), C=math.inf, cv_accuracy=None, folds=0,
                         metrics=classification_metrics(model.predict(x_test), y_test))
    search = GridSearchCV(SVC(gamma="scale"), {"C": list(grid)},
                          cv=StratifiedKFold(folds, shuffle=True, random_state=seed), n_jobs=1)
    search.fit(x_train, y_train)
    return SVMResult(accuracy=float(search.score(x_test, y_test)), C=float(search.best_params_["C"]),
                     cv_accuracy=float(search.best_score_), folds=folds,
                     metrics=classification_metrics(search.predict(x_test), y_test))


class RbfSvmProtocol(Protocol):
    """:func:`svm_accuracy` as a table column; the raw row is the raw series under the same SVM (the field's
    strong baseline beside DTW 1-NN)."""

    def __init__(self, *, cv_seed: int | None, max_folds: int, cv_min_train: int, cv_min_per_class: int) -> None:
        super().__init__("ts_rbf_svm", {"cv_seed": cv_seed, "max_folds": max_folds, "cv_min_train": cv_min_train,
                                        "cv_min_per_class": cv_min_per_class})
        self.cv_seed, self.max_folds = cv_seed, max_folds
        self.cv_min_train, self.cv_min_per_class = cv_min_train, cv_min_per_class

    def skip_reason(self, ctx: EvalContext, row: Row) -> str | None:
        return None if row.objective is None else "n/a: paired rows"

    def measure(self, ctx: EvalContext, row: Row) -> Cell:
        (train_f, train_y), (test_f, test_y) = ctx.features(row, "train"), ctx.features(row, "test")
        seed = ctx.seed if self.cv_seed is None else self.cv_seed
        found = svm_accuracy(train_f, train_y, test_f, test_y, max_folds=self.max_folds, seed=seed,
                             cv_min_train=self.cv_min_train, cv_min_per_class=self.cv_min_per_class)
        return cell("RBF-SVM", {"mean": found.accuracy, "std": 0.0, "seeds": 1}, metrics=found.metrics,
                    details={"dim": int(train_f.shape[1]), "C": found.C, "cv_accuracy": found.cv_accuracy,
                             "folds": found.folds})


@EVALUATIONS.register("ts_rbf_svm", modality="timeseries",
                      description="RBF-SVM on frozen series vectors, C by stratified CV on train (TS2Vec, T-Loss)")
def build_ts_rbf_svm(*, cv_seed: int | None = None, max_folds: int = 5, cv_min_train: int = 50,
                     cv_min_per_class: int = 5) -> Protocol:
    """``cv_seed``: the CV shuffle (default: the recipe's seed); ``max_folds``: at most this many CV folds;
    below ``cv_min_train`` train series or ``cv_min_per_class`` series per class (``N // classes``) C = ∞ without
    CV, as TS2Vec's ``fit_svm`` (50 and 5 there; 0 and 0 always cross-validate)."""
    if max_folds < 2:
        raise ValueError(f"max_folds must be ≥ 2, got {max_folds}")
    if cv_min_train < 0 or cv_min_per_class < 0:
        raise ValueError(f"cv_min_train and cv_min_per_class must be ≥ 0, got {cv_min_train}, {cv_min_per_class}")
    return RbfSvmProtocol(cv_seed=cv_seed, max_folds=max_folds, cv_min_train=cv_min_train,
                          cv_min_per_class=cv_min_per_class)
