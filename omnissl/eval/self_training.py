"""Self-training after SSL: the linear probe on a labelled fraction, pseudo-labels for the most confident unlabelled
train samples, and the probe retrained on both — the classic semi-supervised step on top of frozen SSL features.

Pseudo-labelling is Lee (2013, "Pseudo-Label: the simple and efficient semi-supervised learning method for deep
neural networks"): train on the labels, label the unlabelled data with the model's own argmax, retrain on both.
Noisy Student (Xie et al., 2020) iterates it (teacher → student → teacher) and SimCLRv2 (Chen et al., 2020,
"Big self-supervised models are strong semi-supervised learners", §3) applies it after SSL pretraining and
fine-tuning, on the unlabelled train images; here the teacher and the student are linear probes on frozen features
and the pseudo-labels are hard (Lee's), not SimCLRv2's soft distillation targets.

For each label fraction and seed ``s`` (train features ``(N, D)``, labels ``(N,)``, ``C`` classes):

1. *labelled* ``L``: the stratified draw :func:`omnissl.eval.label_efficiency.label_subset` makes for draw ``s``
   (the very samples the ``label_efficiency`` protocol labels, so the rows are comparable);
   *validation* ``V``: a stratified ``val_fraction`` carve of train minus ``L``; *unlabelled pool* ``U``: the rest
   (its labels are never read for a choice; they only measure the pseudo-labels' accuracy afterwards).
2. **teacher** = "probe @f": an L2 logistic regression on ``L``, decay chosen on ``V``.
3. The teacher's softmax on ``U`` ``(|U|, C)``; for a keep share ``q`` each class ``c`` keeps its ``round(q·|U|·p_c)``
   most confident samples predicted as ``c`` (``p_c``: the class's share of ``L``, so a confident majority class
   cannot crowd the others out), hard label = the argmax.
4. **student** = "probe + pseudo-labels @f": the probe (the teacher's decay) on ``L`` + the kept pseudo-labels, for
   every ``q`` in ``keep_fractions``; ``V`` picks ``q`` (``q = 0`` is the teacher itself, so when no share helps on
   validation the student *is* the teacher). ``rounds > 1``: the student relabels ``U`` and ``V`` picks again.

``V`` holds real labels beyond the fraction — the caveat of Oliver et al. (2018, "Realistic evaluation of deep
semi-supervised learning algorithms"); both rows choose on the same ``V``, so it favours neither. The test split is
only scored. The ``label_efficiency`` protocol's own number (decay chosen on a carve of ``L``) is in the details.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from omnissl.core.errors import ConfigError
from omnissl.core.registry import EVALUATIONS
from omnissl.eval.label_efficiency import draw_seed, label_subset
from omnissl.eval.linear_probe import _train_linear, linear_probe
from omnissl.eval.metrics import classification_metrics, mean_metrics
from omnissl.eval.protocol import Cell, EvalContext, Protocol, Row, SingleTowerProtocol, cell, summary
from omnissl.eval.splits import stratified_split

DEFAULT_KEEP = [0.0, 0.05, 0.1, 0.25, 0.5, 1.0]


def percent(fraction: float) -> str:
    return f"{100 * fraction:g}%"


def check_fractions(fractions: Sequence[float], *, key: str = "fractions") -> list[float]:
    """Sorted fractions, each in (0, 1): pseudo-labelling needs labels *and* an unlabelled rest."""
    bad = [f for f in fractions if not 0 < f < 1]
    if not fractions or bad:
        raise ValueError(f"{key}: label fractions must lie in (0, 1) — a labelled part and an unlabelled rest to "
                         f"pseudo-label (got {list(fractions)})")
    return sorted(fractions)


def select_pseudo_labels(logits: Tensor, prior: Tensor, keep: float) -> tuple[Tensor, Tensor]:
    """``(rows, labels)`` of the kept pool samples: per predicted class ``c`` its ``round(keep · M · prior[c])`` most
    confident rows of ``logits (M, C)``, ``prior (C,)`` summing to 1."""
    confidence, predicted = logits.softmax(dim=1).max(dim=1)
    rows = []
    for c in range(logits.shape[1]):
        members = (predicted == c).nonzero().flatten()
        take = min(len(members), round(keep * logits.shape[0] * float(prior[c])))
        rows.append(members[confidence[members].argsort(descending=True)[:take]])
    chosen = torch.cat(rows).sort().values
    return chosen, predicted[chosen]


def _accuracy(model: nn.Linear, x: Tensor, y: Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == y).float().mean())


def self_train_once(x: Tensor, y: Tensor, x_test: Tensor, y_test: Tensor, *, labelled: Tensor, val: Tensor,
                    pool: Tensor, num_classes: int, weight_decays: Sequence[float], keep_fractions: Sequence[float],
                    rounds: int, max_iter: int, seed: int) -> dict[str, Any]:
    """One draw: teacher and student test accuracy and every choice. ``x`` ``(N, D)`` is standardised already;
    ``labelled``/``val``/``pool`` index it and are disjoint. Only ``y[labelled]`` and ``y[val]`` steer choices."""
    def fit(rows: Tensor, labels: Tensor, decay: float) -> nn.Linear:
        return _train_linear(x[rows], labels, num_classes=num_classes, weight_decay=decay, max_iter=max_iter,
                             seed=seed)

    y_l, y_v = y[labelled], y[val]
    fits = [(decay, fit(labelled, y_l, decay)) for decay in weight_decays]
    val_scores = [_accuracy(m, x[val], y_v) for _, m in fits]
    best = max(range(len(fits)), key=lambda i: (val_scores[i], -i))  # ties: the first (grid order)
    decay, teacher = fits[best]
    prior = torch.bincount(y_l, minlength=num_classes).float() / len(y_l)
    model, model_val, history = teacher, val_scores[best], []
    for _ in range(rounds):
        with torch.no_grad():
            logits = model(x[pool])
        step = {"keep": 0.0, "val_accuracy": model_val, "pseudo_labels": 0, "pseudo_label_accuracy": None}
        candidate_model = model
        for keep in sorted(keep_fractions):
            if keep == 0:
                continue
            rows, labels = select_pseudo_labels(logits, prior, keep)
            if len(rows) == 0:
                continue
            student = fit(torch.cat([labelled, pool[rows]]), torch.cat([y_l, labels]), decay)
            score = _accuracy(student, x[val], y_v)
            if score > step["val_accuracy"]:  # strict: a share must beat what it replaces on validation
                # y[pool] is read here only to report how right the kept pseudo-labels were, never to choose.
                step = {"keep": keep, "val_accuracy": score, "pseudo_labels": len(rows),
                        "pseudo_label_accuracy": float((labels == y[pool][rows]).float().mean())}
                candidate_model = student
        history.append(step)
        if candidate_model is model:  # nothing beat the current model: further rounds would relabel identically
            break
        model, model_val = candidate_model, step["val_accuracy"]
    with torch.no_grad():
        predicted = {"teacher": teacher(x_test).argmax(dim=1), "student": model(x_test).argmax(dim=1)}
    return {"teacher": float((predicted["teacher"] == y_test).float().mean()),
            "student": float((predicted["student"] == y_test).float().mean()),
            "teacher_metrics": classification_metrics(predicted["teacher"], y_test),
            "student_metrics": classification_metrics(predicted["student"], y_test),
            "weight_decay": decay, "teacher_val_accuracy": val_scores[best], "rounds": history}


def self_training(train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor], *, fractions: Sequence[float],
                  seeds: int = 3, rounds: int = 1, keep_fractions: Sequence[float] | None = None,
                  max_iter: int = 200, weight_decays: Sequence[float] | None = None, val_fraction: float = 0.1,
                  num_classes: int | None = None, min_per_class: int = 1,
                  include_label_efficiency: bool = True) -> dict[str, dict[str, Any]]:
    """``{"1%": {"probe", "pseudo", "label_efficiency"?: summary, "labels", "validation", "per_seed"}, ...}``
    for train ``((N, D), (N,))`` and test ``((M, D), (M,))``; summaries are test accuracy mean ± std over seeds."""
    (x_train, y_train), (x_test, y_test) = train, test
    y_train, y_test = y_train.long(), y_test.long()
    if len(y_train) == 0 or int(y_train.min()) < 0:
        unlabelled = int((y_train < 0).sum())
        raise ConfigError(f"pseudolabel: the train split needs a label on every row to draw labelled fractions from "
                          f"({unlabelled} of {len(y_train)} rows are unlabelled, −1)")
    decays = list(weight_decays or [0.0, 1e-4, 1e-3, 1e-2])
    keeps = list(keep_fractions if keep_fractions is not None else DEFAULT_KEEP)
    classes = num_classes or int(max(y_train.max().item(), y_test.max().item())) + 1
    # Standardised with the whole train split's feature statistics: unlabelled inputs are fair game, labels are not.
    mean, std = x_train.float().mean(dim=0), x_train.float().std(dim=0).clamp_min(1e-6)
    x, x_t = (x_train.float() - mean) / std, (x_test.float() - mean) / std
    table = {}
    for fraction in check_fractions(fractions):
        runs, reference, sizes = [], [], []
        for seed in range(seeds):
            labelled = label_subset(y_train, fraction, seed=draw_seed(seed), min_per_class=min_per_class)
            rest = torch.ones(len(y_train), dtype=torch.bool)
            rest[labelled] = False
            others = rest.nonzero().flatten()
            if len(others) < 2:
                raise ConfigError(f"pseudolabel: {percent(fraction)} of {len(y_train)} train rows leaves "
                                  f"{len(others)} unlabelled — too few for a validation part and a pool")
            pool_at, val_at = stratified_split(y_train[others], fraction=val_fraction, seed=20_000 + seed)
            val, pool = others[val_at], others[pool_at]
            runs.append(self_train_once(x, y_train, x_t, y_test, labelled=labelled, val=val, pool=pool,
                                        num_classes=classes, weight_decays=decays, keep_fractions=keeps,
                                        rounds=rounds, max_iter=max_iter, seed=seed))
            sizes.append({"labelled": len(labelled), "validation": len(val), "pool": len(pool)})
            if include_label_efficiency:  # the label_efficiency protocol's number on the same draw, for reference
                reference += linear_probe(x_train[labelled], y_train[labelled], x_test, y_test, seeds=1,
                                          max_iter=max_iter, weight_decays=decays, val_fraction=val_fraction,
                                          num_classes=classes).per_seed
        entry = {"probe": summary([r["teacher"] for r in runs]), "pseudo": summary([r["student"] for r in runs]),
                 "labels": sizes[0]["labelled"], "sizes": sizes,
                 "metrics": {"probe": mean_metrics([r["teacher_metrics"] for r in runs]),
                             "pseudo": mean_metrics([r["student_metrics"] for r in runs])},
                 "per_seed": [{k: v for k, v in r.items() if not k.endswith("_metrics")} for r in runs]}
        if reference:
            entry["label_efficiency"] = summary(reference)
        table[percent(fraction)] = entry
    return table


def gain(entry: dict[str, Any]) -> float:
    """Mean test-accuracy gain of the student over the teacher, in points."""
    return 100 * statistics.fmean(r["student"] - r["teacher"] for r in entry["per_seed"])


class PseudoLabelProtocol(SingleTowerProtocol):
    """Columns "probe @f" and "probe + pseudo-labels @f" per fraction; headline: the student at the lowest one."""

    protocol_name = "pseudolabel"

    def measure(self, ctx: EvalContext, row: Row) -> Cell:
        train, test = ctx.features(row, "train"), ctx.features(row, "test")
        found = self_training(train, test, num_classes=ctx.num_classes, **self.settings)
        columns = {}
        for label, entry in found.items():
            columns[f"probe @{label}"] = entry["probe"]
            columns[f"probe + pseudo-labels @{label}"] = entry["pseudo"]
        low = percent(min(self.settings["fractions"]))
        made = cell(f"probe + pseudo-labels @{low}", found[low]["pseudo"], columns=columns,
                    details={"dim": int(train[0].shape[1]), "fractions": found})
        made["columns"] = columns  # the plain probe before its pseudo-labelled twin, fraction by fraction
        return made


@EVALUATIONS.register("pseudolabel", description="self-training: probe on 1% / 10% of the labels, pseudo-label the "
                                                 "most confident rest of train, retrain (share chosen on validation)")
def build_pseudolabel(*, fractions: list[float] | None = None, seeds: int = 3, rounds: int = 1,
                      keep_fractions: list[float] | None = None, max_iter: int = 200,
                      weight_decays: list[float] | None = None, val_fraction: float = 0.1,
                      min_per_class: int = 1) -> Protocol:
    """``fractions`` of the train labels (default [0.01, 0.1]), ``seeds`` label draws, self-training ``rounds``,
    the shares of the unlabelled pool validation picks from (``keep_fractions``, 0 = no pseudo-labels), and the
    probe settings as ``linear_probe`` (``val_fraction``: the validation carve of the train rows left unlabelled)."""
    chosen = check_fractions(fractions or [0.01, 0.1])
    keeps = sorted(keep_fractions if keep_fractions is not None else DEFAULT_KEEP)
    if seeds < 1 or rounds < 1 or max_iter < 1 or min_per_class < 1 or not 0 < val_fraction < 1:
        raise ValueError(f"need seeds, rounds, max_iter, min_per_class ≥ 1 and 0 < val_fraction < 1 (got {seeds}, "
                         f"{rounds}, {max_iter}, {min_per_class}, {val_fraction})")
    if not keeps or any(not 0 <= k <= 1 for k in keeps):
        raise ValueError(f"keep_fractions: shares of the unlabelled pool must lie in [0, 1] (got {keeps})")
    return PseudoLabelProtocol(fractions=chosen, seeds=seeds, rounds=rounds, keep_fractions=keeps, max_iter=max_iter,
                               weight_decays=weight_decays or [0.0, 1e-4, 1e-3, 1e-2], val_fraction=val_fraction,
                               min_per_class=min_per_class)
