"""What a registered evaluation protocol is: one group of columns of the result table, measured the same way on
every row (trained tower, random init, raw input, public backbone), on subsets the engine fixes once.

A protocol is built by a typed keyword-only builder registered in ``omnissl.core.registry.EVALUATIONS`` and chosen
by a recipe's ``eval.protocols: [{name: knn, k: [20]}, ...]``. It returns a *cell*: the numbers it shows
(``columns``: heading → ``{"mean", "std", "seeds"}``, accuracies in [0, 1]), its headline ``score`` (what the
verdict ranks rows by), the extra ``metrics`` (macro-F1, balanced accuracy) and ``details`` (chosen C, decay, …).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor
from torch.utils.data import Dataset

from omnissl.core.types import DataBundle, Encoder

Select = Callable[[Any], Any]
Cell = dict[str, Any]


def _identity(x: Any) -> Any:
    return x


@dataclass
class Row:
    """One row of the table. ``encoder=None`` is the raw-input row (the bundle's ``raw_features``); ``objective``
    is set for the rows of paired protocols (retrieval, zero-shot), which read every tower at once."""

    name: str
    kind: Literal["ssl", "random init", "raw", "public"]
    encoder: Encoder | None = None
    select: Select = _identity
    objective: Any = None
    identity: dict[str, Any] | None = None  # baseline rows: what makes their numbers reusable (the cache key)
    modality: str = "any"  # the encoder's registered modality, checked against the dataset's before any work

    @property
    def cacheable(self) -> bool:
        return self.identity is not None


@dataclass
class EvalContext:
    """The fixed subsets and settings every protocol of one table shares."""

    bundle: DataBundle
    train_set: Dataset[Any]
    test_set: Dataset[Any]
    device: torch.device
    dataset_name: str
    modality: str = "any"
    seed: int = 0
    batch_size: int = 512
    autocast_dtype: torch.dtype | None = None
    _features: dict[tuple[int, str], tuple[Tensor, Tensor]] = field(default_factory=dict, repr=False)

    @property
    def num_classes(self) -> int | None:
        return self.bundle.num_classes

    def features(self, row: Row, split: Literal["train", "test"]) -> tuple[Tensor, Tensor]:
        """Frozen ``(N, D)`` features and ``(N,)`` labels of ``row`` on a split, computed once per row."""
        from omnissl.eval.features import extract_features, raw_features

        key = (id(row), split)
        if key not in self._features:
            dataset = self.train_set if split == "train" else self.test_set
            if row.encoder is None:
                self._features[key] = raw_features(dataset, self.bundle, batch_size=self.batch_size, select=row.select)
            else:
                row.encoder.to(self.device)
                self._features[key] = extract_features(row.encoder, dataset, self.bundle, device=self.device,
                                                       batch_size=self.batch_size, select=row.select,
                                                       autocast_dtype=self.autocast_dtype)
        return self._features[key]

    def forget(self, row: Row) -> None:
        """Drop a row's features once its protocols are done (a table of many rows must not hold them all)."""
        for split in ("train", "test"):
            self._features.pop((id(row), split), None)


class Protocol:
    """Base class of registered protocols. ``scope``: ``"rows"`` measures each row; ``"objective"`` measures
    paired rows (``row.objective``); ``"baseline"`` adds its own rows (a strong supervised baseline such as
    TF-IDF + logistic regression) whose numbers sit under ``compares_with``'s column."""

    scope: ClassVar[Literal["rows", "objective", "baseline"]] = "rows"
    compares_with: ClassVar[str | None] = None

    def __init__(self, name: str, settings: dict[str, Any]) -> None:
        self.name, self.settings = name, settings

    def skip_reason(self, ctx: EvalContext, row: Row) -> str | None:
        """Why this protocol does not apply to ``row`` (``None``: it applies)."""
        return None

    def measure(self, ctx: EvalContext, row: Row) -> Cell:
        raise NotImplementedError

    def baseline_rows(self, ctx: EvalContext) -> list[tuple[str, Cell]]:
        """``scope == "baseline"``: ``[(row name, cell)]``."""
        return []


class SingleTowerProtocol(Protocol):
    """A protocol that reads one tower's frozen features per row; paired rows (retrieval, zero-shot) do not apply.
    Subclasses name themselves with ``protocol_name`` and take their builder's settings as keywords."""

    protocol_name: ClassVar[str]

    def __init__(self, **settings: Any) -> None:
        super().__init__(self.protocol_name, settings)

    def skip_reason(self, ctx: EvalContext, row: Row) -> str | None:
        return None if row.objective is None else "n/a: paired rows"


def summary(scores: list[float], *, population: bool = False) -> dict[str, Any]:
    """``{"mean", "std", "seeds", "per_seed"}`` of per-seed (or per-fold) accuracies."""
    spread = (statistics.pstdev(scores) if population else statistics.stdev(scores)) if len(scores) > 1 else 0.0
    return {"mean": statistics.fmean(scores), "std": spread, "seeds": len(scores), "per_seed": scores}


def cell(heading: str, score: dict[str, Any], *, metrics: dict[str, float] | None = None,
         columns: dict[str, dict[str, Any]] | None = None, details: dict[str, Any] | None = None) -> Cell:
    """A protocol's cell: the headline ``score`` shown under ``heading`` (first), then any further ``columns``;
    ``metrics`` (macro-F1, balanced accuracy) are shown as their own columns too."""
    shown = {heading: score, **(columns or {})}
    for key, label in (("macro_f1", "macro-F1"), ("balanced_accuracy", "bal. acc.")):
        if metrics and key in metrics:
            shown[f"{heading} {label}"] = {"mean": metrics[key], "plain": True}
    return {"score": score, "columns": shown, "metrics": metrics or {}, "details": details or {}}
