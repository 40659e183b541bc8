"""The evaluation protocol of the published time-series tables (T-Loss, TS2Vec, TS-TCC on UCR/UEA): an RBF-kernel
SVM on frozen instance representations, with C chosen by cross-validation on the train split only.

As in TS2Vec's ``fit_svm``: C ∈ {10⁻⁴ … 10⁴, ∞}, ``gamma='scale'``, 5-fold stratified CV (fewer folds when the
rarest class has fewer than 5 series); with fewer than 2 series in some class no CV is possible and C = ∞ is
used (hard margin), which the result records.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from torch import Tensor

C_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4, math.inf)


@dataclass
class SVMResult:
    accuracy: float
    C: float
    cv_accuracy: float | None
    folds: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _numpy(values: Tensor | np.ndarray) -> np.ndarray:
    return values.detach().cpu().numpy() if isinstance(values, Tensor) else np.asarray(values)


def svm_accuracy(train_features: Tensor | np.ndarray, train_labels: Tensor | np.ndarray,
                 test_features: Tensor | np.ndarray, test_labels: Tensor | np.ndarray, *,
                 grid: tuple[float, ...] = C_GRID, max_folds: int = 5, seed: int = 0) -> SVMResult:
    """Fit an RBF SVM on ``train_features (N, D)``, choose C by stratified CV on the train split, report test
    accuracy. Test data are used only for the final score."""
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.svm import SVC

    x_train, y_train = _numpy(train_features).astype(np.float64), _numpy(train_labels)
    x_test, y_test = _numpy(test_features).astype(np.float64), _numpy(test_labels)
    if not (np.isfinite(x_train).all() and np.isfinite(x_test).all()):
        raise ValueError("svm_accuracy: features contain NaN/Inf")
    counts = np.unique(y_train, return_counts=True)[1]
    folds = int(min(max_folds, counts.min()))
    if folds < 2:
        model = SVC(C=math.inf, gamma="scale").fit(x_train, y_train)
        return SVMResult(accuracy=float(model.score(x_test, y_test)), C=math.inf, cv_accuracy=None, folds=0)
    search = GridSearchCV(SVC(gamma="scale"), {"C": list(grid)},
                          cv=StratifiedKFold(folds, shuffle=True, random_state=seed), n_jobs=1)
    search.fit(x_train, y_train)
    return SVMResult(accuracy=float(search.score(x_test, y_test)), C=float(search.best_params_["C"]),
                     cv_accuracy=float(search.best_score_), folds=folds)
