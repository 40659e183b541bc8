"""Linear probe on frozen features, with weight decay chosen on a validation split carved from train.

For each seed: split train into fit/validation at random (the seed picks the split), fit one L2-regularised
logistic regression per decay on *fit*, pick the decay with the best *validation* accuracy, and report that
model's *test* accuracy. The test split never influences a choice; the spread over seeds reflects the split.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from omnissl.core.registry import EVALUATIONS
from omnissl.eval.metrics import classification_metrics, mean_metrics
from omnissl.eval.protocol import Cell, EvalContext, Protocol, Row, SingleTowerProtocol, cell


@dataclass
class ProbeResult:
    mean: float
    std: float
    per_seed: list[float]
    chosen_weight_decay: list[float] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)  # macro-F1 / balanced accuracy, mean over seeds

    def as_dict(self) -> dict[str, object]:
        return {"mean": self.mean, "std": self.std, "per_seed": self.per_seed, "seeds": len(self.per_seed),
                "chosen_weight_decay": self.chosen_weight_decay, "metrics": self.metrics}


def _train_linear(x: Tensor, y: Tensor, *, num_classes: int, weight_decay: float, max_iter: int,
                  seed: int) -> nn.Linear:
    """Multinomial logistic regression, full batch, L-BFGS with a strong-Wolfe line search (convex: converges)."""
    generator = torch.Generator().manual_seed(seed)
    model = nn.Linear(x.shape[1], num_classes)
    with torch.no_grad():
        model.weight.normal_(0, 0.01, generator=generator)
        model.bias.zero_()
    optimizer = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=max_iter, history_size=20,
                                  line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y) + weight_decay * model.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return model


def _accuracy(model: nn.Linear, x: Tensor, y: Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()


def linear_probe(train_features: Tensor, train_labels: Tensor, test_features: Tensor, test_labels: Tensor, *,
                 seeds: int = 3, max_iter: int = 200, weight_decays: list[float] | None = None,
                 val_fraction: float = 0.1, num_classes: int | None = None) -> ProbeResult:
    """Features ``(N, D)`` / ``(M, D)``, labels ``(N,)`` / ``(M,)`` → test accuracy mean ± std over seeds."""
    weight_decays = weight_decays or [0.0, 1e-4, 1e-3, 1e-2]
    y_train, y_test = train_labels.long(), test_labels.long()
    num_classes = num_classes or int(max(y_train.max().item(), y_test.max().item())) + 1
    # Standardise with training statistics only.
    mean = train_features.float().mean(dim=0)
    std = train_features.float().std(dim=0).clamp_min(1e-6)
    x_train = (train_features.float() - mean) / std
    x_test = (test_features.float() - mean) / std
    scores, chosen, measured = [], [], []
    for seed in range(seeds):
        order = torch.randperm(x_train.shape[0], generator=torch.Generator().manual_seed(10_000 + seed))
        n_val = max(1, int(round(val_fraction * x_train.shape[0])))
        val_idx, fit_idx = order[:n_val], order[n_val:]
        best: tuple[float, float, nn.Linear] | None = None
        for decay in weight_decays:
            model = _train_linear(x_train[fit_idx], y_train[fit_idx], num_classes=num_classes,
                                  weight_decay=decay, max_iter=max_iter, seed=seed)
            val_acc = _accuracy(model, x_train[val_idx], y_train[val_idx])
            if best is None or val_acc > best[0]:
                best = (val_acc, decay, model)
        assert best is not None
        chosen.append(best[1])
        scores.append(_accuracy(best[2], x_test, y_test))
        with torch.no_grad():
            measured.append(classification_metrics(best[2](x_test).argmax(dim=1), y_test))
    spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
    return ProbeResult(mean=statistics.fmean(scores), std=spread, per_seed=scores, chosen_weight_decay=chosen,
                       metrics=mean_metrics(measured))


class LinearProbeProtocol(SingleTowerProtocol):
    """The linear probe as a table column: mean ± std over seeds, decay chosen on each seed's validation part."""

    protocol_name = "linear_probe"

    def measure(self, ctx: EvalContext, row: Row) -> Cell:
        (train_f, train_y), (test_f, test_y) = ctx.features(row, "train"), ctx.features(row, "test")
        result = linear_probe(train_f, train_y, test_f, test_y, num_classes=ctx.num_classes, **self.settings)
        found = result.as_dict()
        score = {k: found[k] for k in ("mean", "std", "seeds", "per_seed")}
        return cell("linear probe", score, metrics=result.metrics,
                    details={"dim": int(train_f.shape[1]), "chosen_weight_decay": result.chosen_weight_decay})


@EVALUATIONS.register("linear_probe", description="L2 logistic regression on frozen features, decay chosen on "
                                                  "validation carved from train")
def build_linear_probe(*, seeds: int = 3, max_iter: int = 200, weight_decays: list[float] | None = None,
                       val_fraction: float = 0.1) -> Protocol:
    """``seeds`` validation carves (the spread), L-BFGS ``max_iter``, the decay grid, the validation share."""
    if seeds < 1 or max_iter < 1 or not 0 < val_fraction < 1:
        raise ValueError(f"need seeds ≥ 1, max_iter ≥ 1, 0 < val_fraction < 1 (got {seeds}, {max_iter}, "
                         f"{val_fraction})")
    return LinearProbeProtocol(seeds=seeds, max_iter=max_iter, weight_decays=weight_decays or [0.0, 1e-4, 1e-3, 1e-2],
                               val_fraction=val_fraction)
