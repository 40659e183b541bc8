"""Classification metrics beside top-1: macro-F1 and balanced accuracy (mean per-class recall), which stay honest on
class-imbalanced sets where top-1 rewards predicting the majority class (Brodersen et al., 2010, "The balanced
accuracy and its posterior distribution")."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def classification_metrics(predicted: Tensor | Any, truth: Tensor | Any) -> dict[str, float]:
    """predicted ``(M,)`` and truth ``(M,)`` integer labels → ``{"top1", "macro_f1", "balanced_accuracy"}``.

    Macro averages run over the classes present in ``truth`` or ``predicted`` (a class never predicted and never
    true has no F1 to average)."""
    p, t = torch.as_tensor(predicted).long().flatten(), torch.as_tensor(truth).long().flatten()
    if p.shape != t.shape or p.numel() == 0:
        raise ValueError(f"metrics need equal non-empty label vectors, got {tuple(p.shape)} and {tuple(t.shape)}")
    f1s, recalls = [], []
    for c in torch.cat([p, t]).unique():
        tp = float(((p == c) & (t == c)).sum())
        fp, fn = float(((p == c) & (t != c)).sum()), float(((p != c) & (t == c)).sum())
        f1s.append(2 * tp / max(2 * tp + fp + fn, 1e-12))
        if tp + fn > 0:
            recalls.append(tp / (tp + fn))
    return {"top1": float((p == t).float().mean()), "macro_f1": sum(f1s) / len(f1s),
            "balanced_accuracy": sum(recalls) / len(recalls)}


def mean_metrics(per_seed: list[dict[str, float]]) -> dict[str, float]:
    """The per-key mean of several seeds' metric dicts."""
    keys = per_seed[0].keys() if per_seed else ()
    return {k: sum(m[k] for m in per_seed) / len(per_seed) for k in keys}
