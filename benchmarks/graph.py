"""Graph benchmark: the published protocols on frozen embeddings, beside raw-feature and random-init baselines.

- TU (MUTAG, PROTEINS, NCI1): pretrain on every graph (labels unused, as InfoGraph/GraphCL/GraphMAE do), then
  SVM with C ∈ {1e-3 … 1e3} chosen by inner 5-fold CV, 10-fold stratified CV over all graphs: mean ± std over folds.
- Cora: pretrain on the whole graph (transductive, labels unused), then logistic regression on the public split
  (fit on 140 nodes, C chosen on 500 validation nodes, accuracy on the 1,000 test nodes): mean ± std over seeds.

    OMNISSL_DATA_DIR=/work/shared/datasets .venv/bin/python benchmarks/graph.py --datasets MUTAG Cora --seeds 3

Budgets are **process CPU time** (``train.max_cpu_minutes`` = ``--cpu-minutes``, one thread), so rows stay
comparable when other jobs share the machine; each run records its CPU seconds, steps and the load average.

Choosing settings (``--tag NAME --set KEY=VALUE …``): the run goes to ``graph_sweep.json`` instead of the result
files, with a **validation** score next to the test score; ``graph_sweep.md`` lists every setting and marks the
one with the best validation score. Validation never reads a test label: Cora = accuracy on the public 500
validation nodes; TU = the mean over the 10 outer folds of the inner 5-fold CV accuracy *on the training folds*
(the held-out fold of each split is not scored). Without ``--tag`` a run writes
``graph.<dataset>.<method>.json`` and ``graph.md``/``graph.json`` are rebuilt from every such file.
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from graph_table import best_on_validation, write_sweep_table, write_table  # benchmarks/ is on sys.path: run as a script
from omnissl_graph.data import NodeDataset
from omnissl_graph.evaluation import (
    all_graphs,
    all_node_embeddings,
    build_graph_histogram_svm,
    build_graph_svm_10fold,
    build_planetoid_split,
    graph_embeddings,
)

from omnissl.core.config import load_recipe
from omnissl.eval.collapse import collapse_stats
from omnissl.train.assemble import assemble, random_init_encoders
from omnissl.train.runner import Trainer, read_metrics
from omnissl.workflows.evaluation import evaluate_encoders

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TU = ("MUTAG", "PROTEINS", "NCI1")
# method → (recipe, planned pretraining epochs); the CPU budget stops a run earlier if it is spent first.
TU_METHODS = {"graphcl": ("graphcl.yaml", 20), "infograph": ("infograph.yaml", 20), "graphmae": ("graphmae_mutag.yaml", 20), "simclr": ("simclr.yaml", 20)}
CORA_METHODS = {"grace": ("grace.yaml", 200), "graphmae": ("graphmae.yaml", 300), "dgi": ("dgi.yaml", 300)}


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def score(encoder: torch.nn.Module | None, bundle: Any, dataset: str, seed: int, recipe: Any) -> dict[str, Any]:
    """The published protocol for one encoder (``None``: the raw features) through the engine — the registered
    ``planetoid_split`` (Cora) or ``graph_svm_10fold`` (TU) protocol ``omnissl eval`` runs for these recipes.
    TU with ``encoder=None`` also scores the degree + label histogram baseline (``histogram``)."""
    protocol = build_planetoid_split() if dataset == "Cora" else build_graph_svm_10fold()
    protocols = [protocol] if dataset == "Cora" or encoder is not None else [protocol, build_graph_histogram_svm()]
    encoders = {} if encoder is None else {"encoder": encoder}
    table = evaluate_encoders(encoders, bundle, recipe.eval, device=torch.device("cpu"), dataset_name=dataset,
                              include_raw=encoder is None, seed=seed, protocols=protocols)
    cells = {row["name"]: row["cells"][protocol.name] for row in table.rows if protocol.name in row["cells"]}
    found = table.rows[0]["cells"][protocol.name]
    out = {"mean": found["score"]["mean"], "std": found["score"]["std"], "metrics": found["metrics"]}
    if "degree + label histograms" in cells:
        out["histogram"] = cells["degree + label histograms"]["score"]["mean"]
    # Cora: the public val_mask; TU: the inner CV of the training folds (the C search the protocol already ran)
    out["val"] = found["details"]["val" if dataset == "Cora" else "inner_cv"]
    return out


def embeddings(encoder: Any, bundle: Any, dataset: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    if dataset == "Cora":
        return all_node_embeddings(encoder, bundle.train.graph), None
    return graph_embeddings(encoder, bundle)


def describe(encoder: Any, bundle: Any, dataset: str, seed: int, recipe: Any, *, validate: bool) -> dict[str, Any]:
    """Test score, the validation score (sweeps) and the collapse monitor's numbers for one frozen encoder."""
    found = score(encoder, bundle, dataset, seed, recipe)
    features, _ = embeddings(encoder, bundle, dataset)
    stats = collapse_stats(features)
    found["effective_rank"], found["embedding_std"] = stats["effective_rank"], stats["embedding_std"]
    if not validate and dataset != "Cora":  # TU rows outside a sweep carry no validation score, as before
        found.pop("val")
    return found


def pretrain(dataset: str, method: str, seed: int, cpu_minutes: float, data_root: str | None, *,
             epochs: int | None = None, extra: tuple[str, ...] = (), validate: bool = False) -> dict[str, Any]:
    """One pretraining run under a ``cpu_minutes`` process-CPU budget, scored with its random-init twin."""
    recipe_file, default_epochs = (CORA_METHODS if dataset == "Cora" else TU_METHODS)[method]
    epochs = epochs or default_epochs
    overrides = [f"seed={seed}", f"train.max_cpu_minutes={cpu_minutes}", "train.max_minutes=null",
                 "train.checkpoint_every=0", "train.knn_every=0", *extra]
    if dataset != "Cora":
        overrides.append(f"data.dataset={dataset}")
    recipe = load_recipe(ROOT / "recipes" / "graph" / recipe_file, overrides)
    assembled = assemble(recipe, root=data_root)
    bundle = assembled.bundle
    if dataset == "Cora":  # every node, as GRACE/DGI/GraphMAE pretrain transductively
        graph = bundle.train.graph
        train_set = NodeDataset(graph, torch.arange(graph.num_nodes))
        steps, batch = epochs, graph.num_nodes
    else:
        train_set = all_graphs(bundle)
        batch = recipe.train.batch_size
        steps = math.ceil(epochs * len(train_set) / batch)
    recipe = load_recipe(ROOT / "recipes" / "graph" / recipe_file,
                         overrides + [f"train.steps={steps}", f"train.batch_size={batch}"])
    assembled = dataclasses.replace(assembled, recipe=recipe, bundle=dataclasses.replace(bundle, train=train_set))
    load_before = load_average()
    with tempfile.TemporaryDirectory() as run_dir:
        cpu0, wall0 = time.process_time(), time.time()
        result = Trainer(assembled, Path(run_dir) / "run").fit()
        cpu_s, wall_s = time.process_time() - cpu0, time.time() - wall0
        losses = [r["loss"] for r in read_metrics(Path(run_dir) / "run") if "loss" in r]
    load_after = load_average()
    encoder = next(iter(assembled.encoders.values()))
    random_init = next(iter(random_init_encoders(recipe, bundle, seed=seed + 1).values()))
    return {"seed": seed, "epochs": epochs, "steps_done": result.steps_done, "steps_planned": steps,
            "batch_size": batch, "stopped_because": result.stopped_because, "cpu_seconds": cpu_s,
            "wall_seconds": wall_s, "load_before": load_before, "load_after": load_after,
            "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
            "accuracy": describe(encoder, bundle, dataset, seed, recipe, validate=validate),
            "random_init_accuracy": describe(random_init, bundle, dataset, seed, recipe, validate=False),
            "recipe": f"recipes/graph/{recipe_file}", "overrides": overrides, "_bundle": bundle, "_recipe": recipe}


def raw_baseline(dataset: str, bundle: Any, seed: int, recipe: Any) -> float:
    """Cora: the bag of words on the public split; TU: the per-graph label sums/means under the same SVM."""
    return score(None, bundle, dataset, seed, recipe)["mean"]


def mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values) if len(values) > 1 else 0.0}


def run(dataset: str, method: str, seeds: int, cpu_minutes: float, data_root: str | None, *,
        epochs: int | None = None, extra: tuple[str, ...] = (), validate: bool = False) -> dict[str, Any]:
    runs = [pretrain(dataset, method, seed, cpu_minutes, data_root, epochs=epochs, extra=extra, validate=validate)
            for seed in range(seeds)]
    bundle, recipe = runs[0]["_bundle"], runs[0]["_recipe"]
    for r in runs:
        r.pop("_bundle"), r.pop("_recipe")
    raw = score(None, bundle, dataset, 0, recipe)
    out = {"dataset": dataset, "method": method, "threads": torch.get_num_threads(), "cpu_minutes_cap": cpu_minutes,
           "settings": list(extra), "epochs": runs[0]["epochs"],
           "protocol": "logreg public split" if dataset == "Cora" else "SVM 10-fold CV (C by inner 5-fold)",
           "accuracy": mean_std([r["accuracy"]["mean"] for r in runs]),
           "fold_std": statistics.fmean(r["accuracy"]["std"] for r in runs),
           "random_init": mean_std([r["random_init_accuracy"]["mean"] for r in runs]),
           "delta_vs_random": mean_std([r["accuracy"]["mean"] - r["random_init_accuracy"]["mean"] for r in runs]),
           "raw": raw["mean"], "histogram": raw.get("histogram"),
           "cpu_seconds": mean_std([r["cpu_seconds"] for r in runs]), "runs": runs}
    if validate:
        out["val"] = mean_std([r["accuracy"]["val"] for r in runs])
    print(json.dumps({k: v for k, v in out.items() if k != "runs"}), flush=True)
    return out


def record_sweep(result: dict[str, Any], tag: str) -> None:
    """Add (or replace) one tagged entry. Trials of different datasets run side by side and share the file, so
    the read-modify-write holds an exclusive lock on it: no finished trial is lost to another's write."""
    path = RESULTS / "graph_sweep.json"
    with open(path, "a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        text = handle.read()
        sweep = json.loads(text) if text.strip() else {"entries": []}
        key = (result["dataset"], result["method"], tag)
        sweep["entries"] = [e for e in sweep["entries"] if (e["dataset"], e["method"], e["tag"]) != key]
        sweep["entries"].append({**result, "tag": tag})
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(sweep, indent=2))


def promote(dataset: str, method: str, tag: str) -> None:
    """Copy a sweep entry (``best``: the highest validation mean within the CPU budget) to the result file."""
    entries = [e for e in json.loads((RESULTS / "graph_sweep.json").read_text())["entries"]
               if (e["dataset"], e["method"]) == (dataset, method)]
    chosen = best_on_validation(entries) if tag == "best" else \
        next(e for e in entries if e["tag"] == tag)
    (RESULTS / f"graph.{dataset}.{method}.json").write_text(json.dumps(chosen, indent=2), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["MUTAG", "Cora"], choices=[*TU, "Cora"])
    parser.add_argument("--methods", nargs="+", default=None, help="default: every method of each dataset")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--cpu-minutes", type=float, default=5.0, help="process-CPU budget per pretraining run")
    parser.add_argument("--epochs", type=int, default=None, help="planned epochs (default: the method's own)")
    parser.add_argument("--set", dest="extra", nargs="*", default=[], help="recipe overrides KEY=VALUE (a sweep)")
    parser.add_argument("--tag", default=None, help="name of this setting: record it in graph_sweep.json")
    parser.add_argument("--final", action="store_true", help="with --tag: also write the result file (the "
                        "setting the table shows; use it for the recipe's own, validation-chosen settings)")
    parser.add_argument("--promote", default=None, metavar="TAG", help="copy sweep entry TAG (or 'best', by "
                        "validation) of each --datasets × --methods to its result file; trains nothing")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--table-only", action="store_true", help="only rebuild the tables from the result files")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)
    for dataset in [] if args.table_only else args.datasets:
        methods = CORA_METHODS if dataset == "Cora" else TU_METHODS
        for method in args.methods or list(methods):
            if method not in methods:
                continue
            if args.promote:
                promote(dataset, method, args.promote)
                continue
            result = run(dataset, method, args.seeds, args.cpu_minutes, args.data_root, epochs=args.epochs,
                         extra=tuple(args.extra), validate=args.tag is not None)
            result["command"] = " ".join(["benchmarks/graph.py", *sys.argv[1:]])
            if args.tag is not None:
                record_sweep(result, args.tag)
            if args.tag is None or args.final:
                (RESULTS / f"graph.{dataset}.{method}.json").write_text(json.dumps(result, indent=2),
                                                                        encoding="utf-8")
    write_sweep_table(RESULTS)
    write_table(RESULTS, TU)


if __name__ == "__main__":
    main()
