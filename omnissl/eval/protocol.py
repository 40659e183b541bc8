"""The shared protocol: every encoder row and every baseline row measured the same way, in one table.

Rows: the SSL backbone(s), a randomly initialised encoder of the same architecture, and the raw input features.
Columns: weighted k-NN top-1 at each k, and linear-probe accuracy mean ± std over seeds (decay chosen on a
validation split carved from train).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor
from torch.utils.data import Dataset

from omnissl.core.config import EvalConfig
from omnissl.eval.features import extract_features, limit, raw_features
from omnissl.eval.knn import knn_accuracy
from omnissl.eval.linear_probe import linear_probe
from omnissl.eval.summary import score
from omnissl.core.types import DataBundle, Encoder

FeatureSource = Callable[[Dataset[Any]], tuple[Tensor, Tensor]]


@dataclass
class EvalRow:
    name: str
    feature_dim: int
    knn: dict[str, float]
    probe: dict[str, Any]


@dataclass
class EvalReport:
    dataset: str
    train_samples: int
    test_samples: int
    rows: list[EvalRow] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2), encoding="utf-8")

    def table(self) -> str:
        """A Markdown table: one row per encoder or baseline."""
        knn_keys = list(self.rows[0].knn) if self.rows else []
        header = ["features", "dim", *[f"k-NN {k}" for k in knn_keys], "linear probe (mean ± std)"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in self.rows:
            probe = score(result=row.probe)
            knn = [f"{100 * row.knn[k]:.2f}" for k in knn_keys]
            lines.append("| " + " | ".join([row.name, str(row.feature_dim), *knn, probe]) + " |")
        return "\n".join(lines)


def measure(name: str, train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor], config: EvalConfig,
            num_classes: int | None) -> EvalRow:
    (train_f, train_y), (test_f, test_y) = train, test
    knn = {f"k={k}": knn_accuracy(train_f, train_y, test_f, test_y, k=k, temperature=config.knn_temperature,
                                  num_classes=num_classes) for k in config.knn_k}
    probe = linear_probe(train_f, train_y, test_f, test_y, seeds=config.probe_seeds, max_iter=config.probe_max_iter,
                         weight_decays=config.probe_weight_decays, val_fraction=config.val_fraction,
                         num_classes=num_classes)
    return EvalRow(name=name, feature_dim=int(train_f.shape[1]), knn=knn, probe=probe.as_dict())


def evaluate(encoders: dict[str, Encoder], bundle: DataBundle, config: EvalConfig, *, device: torch.device,
             dataset_name: str, select: Callable[[Any], Any] | None = None, include_raw: bool = True,
             autocast_dtype: torch.dtype | None = None) -> EvalReport:
    """Evaluate each named encoder (and the raw-feature baseline) with the same splits and protocol."""
    if bundle.test is None:
        raise ValueError(f"dataset '{dataset_name}' has no test split to evaluate on")
    pick = select or (lambda x: x)
    train_set = limit(bundle.train, config.max_train_samples, seed=3)
    test_set = limit(bundle.test, config.max_test_samples, seed=4)
    report = EvalReport(dataset=dataset_name, train_samples=len(train_set),  # type: ignore[arg-type]
                        test_samples=len(test_set))  # type: ignore[arg-type]
    for name, encoder in encoders.items():
        encoder.to(device)
        train = extract_features(encoder, train_set, bundle, device=device, batch_size=config.batch_size,
                                 select=pick, autocast_dtype=autocast_dtype)
        test = extract_features(encoder, test_set, bundle, device=device, batch_size=config.batch_size,
                                select=pick, autocast_dtype=autocast_dtype)
        report.rows.append(measure(name, train, test, config, bundle.num_classes))
    if include_raw and "raw" in config.baselines and bundle.raw_features is not None:
        train = raw_features(train_set, bundle, batch_size=config.batch_size, select=pick)
        test = raw_features(test_set, bundle, batch_size=config.batch_size, select=pick)
        report.rows.append(measure("raw input", train, test, config, bundle.num_classes))
    return report
