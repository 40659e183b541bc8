"""Graph benchmark: the published protocols on frozen embeddings, beside raw-feature and random-init baselines.

- TU (MUTAG, PROTEINS, NCI1): pretrain on every graph (labels unused, as InfoGraph/GraphCL/GraphMAE do), then
  SVM with C ∈ {1e-3 … 1e3} chosen by inner 5-fold CV, 10-fold stratified CV over all graphs: mean ± std over folds.
- Cora: pretrain on the whole graph (transductive, labels unused), then logistic regression on the public split
  (fit on 140 nodes, C chosen on 500 validation nodes, accuracy on the 1,000 test nodes): mean ± std over seeds.

    OMNISSL_DATA_DIR=/work/shared/datasets .venv/bin/python benchmarks/graph.py --datasets MUTAG Cora --seeds 3

Training goes through the normal runner on ONE CPU thread, capped at ``--minutes`` wall-clock per run. Each
(dataset, method) writes ``benchmarks/results/graph.<dataset>.<method>.json``; every invocation rewrites
``graph.md`` and ``graph.json`` from all such files present, with the measured process CPU time per run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from omnissl_graph.data import NodeDataset
from omnissl_graph.evaluation import all_graphs, build_graph_svm_10fold, build_planetoid_split

from omnissl.core.config import load_recipe
from omnissl.train.assemble import assemble, random_init_encoders
from omnissl.train.runner import Trainer, read_metrics
from omnissl.workflows.evaluation import evaluate_encoders

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TU = ("MUTAG", "PROTEINS", "NCI1")
# method → (recipe, pretraining epochs): the papers' epoch counts (GraphCL / GraphMAE-TU: 20; GRACE Cora: 200).
TU_METHODS = {"graphcl": ("graphcl.yaml", 20), "graphmae": ("graphmae_mutag.yaml", 20), "simclr": ("simclr.yaml", 20)}
CORA_METHODS = {"grace": ("grace.yaml", 200), "graphmae": ("graphmae.yaml", 300), "dgi": ("dgi.yaml", 300)}
PUBLISHED = {  # accuracy %, from the issue (InfoGraph/GraphCL/GraphMAE papers; DGI/GRACE/GraphMAE on Cora)
    "MUTAG": {"InfoGraph": 89.01, "GraphCL": 86.80, "GraphMAE": 88.19},
    "PROTEINS": {"InfoGraph": 74.44, "GraphCL": 74.39, "GraphMAE": 75.30},
    "NCI1": {"InfoGraph": 76.20, "GraphCL": 77.87, "GraphMAE": 80.40},
    "Cora": {"DGI": 82.3, "GRACE": 81.9, "GraphMAE": 84.2},
}


def score(encoder: torch.nn.Module | None, bundle: Any, dataset: str, seed: int, recipe: Any) -> dict[str, Any]:
    """The published protocol for one encoder (``None``: the raw features) through the engine — the registered
    ``planetoid_split`` (Cora) or ``graph_svm_10fold`` (TU) protocol ``omnissl eval`` runs for these recipes."""
    protocol = build_planetoid_split() if dataset == "Cora" else build_graph_svm_10fold()
    encoders = {} if encoder is None else {"encoder": encoder}
    table = evaluate_encoders(encoders, bundle, recipe.eval, device=torch.device("cpu"), dataset_name=dataset,
                              include_raw=encoder is None, seed=seed, protocols=[protocol])
    found = table.rows[0]["cells"][protocol.name]
    return {"mean": found["score"]["mean"], "std": found["score"]["std"], "metrics": found["metrics"]}


def pretrain(dataset: str, method: str, seed: int, minutes: float, data_root: str | None) -> dict[str, Any]:
    recipe_file, epochs = (CORA_METHODS if dataset == "Cora" else TU_METHODS)[method]
    overrides = [f"seed={seed}", f"train.max_minutes={minutes}", "train.checkpoint_every=0", "train.knn_every=0"]
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
    with tempfile.TemporaryDirectory() as run_dir:
        cpu0, wall0 = time.process_time(), time.time()
        result = Trainer(assembled, Path(run_dir) / "run").fit()
        cpu_s, wall_s = time.process_time() - cpu0, time.time() - wall0
        losses = [r["loss"] for r in read_metrics(Path(run_dir) / "run") if "loss" in r]
    encoder = next(iter(assembled.encoders.values()))
    random_init = next(iter(random_init_encoders(recipe, bundle, seed=seed + 1).values()))
    return {"seed": seed, "steps_done": result.steps_done, "steps_planned": steps, "batch_size": batch,
            "stopped_because": result.stopped_because, "cpu_seconds": cpu_s, "wall_seconds": wall_s,
            "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
            "accuracy": score(encoder, bundle, dataset, seed, recipe),
            "random_init_accuracy": score(random_init, bundle, dataset, seed, recipe),
            "recipe": f"recipes/graph/{recipe_file}", "overrides": overrides, "_bundle": bundle, "_recipe": recipe}


def raw_baseline(dataset: str, bundle: Any, seed: int, recipe: Any) -> float:
    """Cora: the bag of words on the public split; TU: the per-graph label sums/means under the same SVM."""
    return score(None, bundle, dataset, seed, recipe)["mean"]


def mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values) if len(values) > 1 else 0.0}


def run(dataset: str, method: str, seeds: int, minutes: float, data_root: str | None) -> dict[str, Any]:
    runs = [pretrain(dataset, method, seed, minutes, data_root) for seed in range(seeds)]
    bundle, recipe = runs[0].pop("_bundle"), runs[0].pop("_recipe")
    for r in runs[1:]:
        r.pop("_bundle"), r.pop("_recipe")
    raw = raw_baseline(dataset, bundle, 0, recipe)
    out = {"dataset": dataset, "method": method, "threads": torch.get_num_threads(), "minutes_cap": minutes,
           "protocol": "logreg public split" if dataset == "Cora" else "SVM 10-fold CV (C by inner 5-fold)",
           "accuracy": mean_std([r["accuracy"]["mean"] for r in runs]),
           "fold_std": statistics.fmean(r["accuracy"]["std"] for r in runs),
           "random_init": mean_std([r["random_init_accuracy"]["mean"] for r in runs]), "raw": raw,
           "cpu_seconds": mean_std([r["cpu_seconds"] for r in runs]), "runs": runs}
    print(json.dumps({k: v for k, v in out.items() if k != "runs"}), flush=True)
    return out


def write_table(command: str) -> None:
    results = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("graph.*.*.json"))]
    order = {name: i for i, name in enumerate([*TU, "Cora"])}
    results.sort(key=lambda r: (order.get(r["dataset"], 9), r["method"]))
    lines = ["# Graph benchmark (measured)", "", f"Command: `{command}`", "",
             ("TU: SVM (C from {1e-3…1e3} by inner 5-fold CV), 10-fold stratified CV over all graphs; the ± is the "
              "std over folds (averaged over training seeds when several). Cora: logistic regression on the public "
              "split (140 train / 500 val for C / 1,000 test); the ± is the std over training seeds. Pretraining sees "
              "every graph/node without labels, as in the papers. CPU s = process CPU time of pretraining, one "
              "thread."), "",
             "| dataset | method | seeds | steps | accuracy % | random init % | raw features % | CPU s / run | published % |",
             "|---|---|---:|---:|---|---|---:|---:|---|"]
    for r in results:
        seeds = len(r["runs"])
        std = r["accuracy"]["std"] if r["dataset"] == "Cora" else r["fold_std"]
        steps = f"{r['runs'][0]['steps_done']}/{r['runs'][0]['steps_planned']}"
        published = ", ".join(f"{k} {v:.2f}" for k, v in PUBLISHED[r["dataset"]].items())
        spread = f" ± {100 * std:.2f}" if r["dataset"] != "Cora" or seeds > 1 else " (1 seed)"
        lines.append(f"| {r['dataset']} | {r['method']} | {seeds} | {steps} | {100 * r['accuracy']['mean']:.2f}"
                     f"{spread} | {100 * r['random_init']['mean']:.2f} | {100 * r['raw']:.2f} | "
                     f"{r['cpu_seconds']['mean']:.1f} | {published} |")
    lines += ["", "steps a/b: b = planned steps (the paper's epochs for GraphCL, GraphMAE on TU and GRACE; 300 of "
              "GraphMAE's 1,500 Cora epochs; 300 for DGI, which early-stops in the paper), a = steps done before the "
              "wall-clock cap "
              "(`--minutes`) on a shared 2-core machine (load ≈ 16 while these ran, so wall ≫ CPU time). Random "
              "init = the recipe's architecture untrained (GIN on TU; GCN for GRACE/DGI, GAT for GraphMAE on Cora). "
              "Raw features: TU = per-graph sum and mean of one-hot node labels; Cora = bag of words."]
    (RESULTS / "graph.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (RESULTS / "graph.json").write_text(json.dumps({"command": command, "published": PUBLISHED,
                                                    "results": results}, indent=2), encoding="utf-8")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["MUTAG", "Cora"], choices=[*TU, "Cora"])
    parser.add_argument("--methods", nargs="+", default=None, help="default: every method of each dataset")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--minutes", type=float, default=10.0, help="wall-clock cap per pretraining run")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--table-only", action="store_true", help="only rebuild graph.md/json from the result files")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)
    for dataset in [] if args.table_only else args.datasets:
        methods = CORA_METHODS if dataset == "Cora" else TU_METHODS
        for method in args.methods or list(methods):
            if method not in methods:
                continue
            result = run(dataset, method, args.seeds, args.minutes, args.data_root)
            (RESULTS / f"graph.{dataset}.{method}.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    write_table("OMNISSL_DATA_DIR=/work/shared/datasets .venv/bin/python benchmarks/graph.py "
                "--datasets <D…> --seeds <S> --minutes <M> --threads 1")


if __name__ == "__main__":
    main()
