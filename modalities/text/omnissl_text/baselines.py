"""The text field's strong supervised baseline: TF-IDF over words and word bigrams + L2 logistic regression
(Wang & Manning, 2012, "Baselines and Bigrams"; the bag-of-n-grams rows of Joulin et al., 2017, fastText). A text
SSL encoder that does not beat it on a labelled task should not be called useful there.

``text_tfidf_lr`` adds one row under the ``linear_probe`` column: for each seed the probe's random validation part is
carved from the train split (as the probe does), C is chosen on it from ``c_grid``, and the chosen model's test
accuracy is reported (mean ± std over seeds). The vocabulary and IDF come from the fit part only. Texts are
the dataset's original strings; a synthetic set without them uses its token ids as words, and ``min_df`` (default
2, the benchmark's setting) drops n-grams seen in a single fit text.
"""

from __future__ import annotations

import statistics
from typing import Any

import torch

from omnissl.core.registry import EVALUATIONS
from omnissl.data.tensors import Subset
from omnissl.eval.metrics import classification_metrics, mean_metrics
from omnissl.eval.protocol import Cell, EvalContext, Protocol, cell
from omnissl.eval.splits import dataset_labels


def dataset_texts(dataset: Any) -> list[str]:
    """The original strings of a ``TextDataset`` (or a ``Subset`` of one); token ids as words when it kept none
    (synthetic sets), so the baseline still runs on them."""
    indices = None
    if isinstance(dataset, Subset):
        dataset, indices = dataset.dataset, list(dataset.indices)
    texts = list(getattr(dataset, "texts", []) or [])
    if not texts:
        texts = [" ".join(f"t{int(i)}" for i in ids) for ids in dataset.ids]
    return texts if indices is None else [texts[i] for i in indices]


def tfidf_lr(train: tuple[list[str], Any], test: tuple[list[str], Any], *, seeds: int, val_fraction: float,
             c_grid: list[float], min_df: int, max_features: int | None) -> dict[str, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    (texts, labels), (test_texts, test_labels) = train, test
    scores, chosen, measured = [], [], []
    for seed in range(seeds):
        # The linear probe's validation carve (same generator seed), so the two rows choose on the same samples.
        order = torch.randperm(len(texts), generator=torch.Generator().manual_seed(10_000 + seed))
        n_val = max(1, int(round(val_fraction * len(texts))))
        val, fit = order[:n_val], order[n_val:]
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=min_df, sublinear_tf=True, max_features=max_features)
        x_fit = vectorizer.fit_transform([texts[i] for i in fit.tolist()])
        x_val = vectorizer.transform([texts[i] for i in val.tolist()])
        best: tuple[float, float, Any] | None = None
        for c in c_grid:
            model = LogisticRegression(C=c, max_iter=2000).fit(x_fit, labels[fit].numpy())
            accuracy = float(model.score(x_val, labels[val].numpy()))
            if best is None or accuracy > best[0]:
                best = (accuracy, c, model)
        assert best is not None
        predicted = best[2].predict(vectorizer.transform(test_texts))
        found = classification_metrics(torch.as_tensor(predicted), test_labels)
        scores.append(found["top1"])
        measured.append(found)
        chosen.append(best[1])
    spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
    return {"mean": statistics.fmean(scores), "std": spread, "seeds": len(scores), "per_seed": scores,
            "chosen_C": chosen, "metrics": mean_metrics(measured)}


class TextTfidfBaseline(Protocol):
    scope = "baseline"
    compares_with = "linear_probe"

    def __init__(self, **settings: Any) -> None:
        super().__init__("text_tfidf_lr", settings)

    def baseline_rows(self, ctx: EvalContext) -> list[tuple[str, Cell]]:
        train = (dataset_texts(ctx.train_set), dataset_labels(ctx.train_set, ctx.bundle))
        test = (dataset_texts(ctx.test_set), dataset_labels(ctx.test_set, ctx.bundle))
        found = tfidf_lr(train, test, **self.settings)
        score = {k: found[k] for k in ("mean", "std", "seeds", "per_seed")}
        return [("TF-IDF word+bigram + LR", cell("linear probe", score, metrics=found["metrics"],
                                                  details={"chosen_C": found["chosen_C"]}))]


@EVALUATIONS.register("text_tfidf_lr", modality="text",
                      description="TF-IDF (words + bigrams) + logistic regression: the strong text baseline row")
def build_text_tfidf_lr(*, seeds: int = 3, val_fraction: float = 0.1, c_grid: list[float] | None = None,
                        min_df: int = 2, max_features: int | None = None) -> Protocol:
    """``seeds`` validation carves, C from ``c_grid`` (default 0.1 … 100), n-grams in ≥ ``min_df`` fit texts
    (at most ``max_features``)."""
    grid = c_grid or [0.1, 1.0, 10.0, 100.0]
    if seeds < 1 or not 0 < val_fraction < 1 or any(c <= 0 for c in grid):
        raise ValueError(f"need seeds ≥ 1, 0 < val_fraction < 1, C > 0 (got {seeds}, {val_fraction}, {grid})")
    return TextTfidfBaseline(seeds=seeds, val_fraction=val_fraction, c_grid=grid, min_df=min_df,
                             max_features=max_features)
