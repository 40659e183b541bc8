"""Where a full-graph Cora step of a graph recipe spends its CPU time, and what sparse input would save.

    OMNISSL_DATA_DIR=/work/shared/datasets OMP_NUM_THREADS=1 .venv/bin/python benchmarks/graph_step_profile.py \
        --recipe recipes/graph/graphmae.yaml --steps 8

Writes ``results/graph_step_profile.<recipe>.json``: the CPU seconds per step, the share of the ten most
expensive torch ops (``torch.profiler``, self CPU time), and, side by side in the same run, the first layer's
input projection (dropout + ``(N, F) @ (F, D)`` forward and backward) on the dense bag of words against the same
product on a CSR copy of it, as a ratio. One thread, as the graph benchmark runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from omnissl_graph.data import NodeDataset
from torch.profiler import profile

from omnissl.core.config import load_recipe
from omnissl.train.assemble import assemble
from omnissl.train.runner import Trainer

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def profile_steps(recipe_path: Path, steps: int, data_root: str | None) -> tuple[dict, torch.Tensor]:
    """The profile record and the graph's node features ``(N, F)`` (for :func:`first_layer_ratio`)."""
    overrides = [f"train.steps={steps}", "train.checkpoint_every=0", "train.knn_every=0",
                 "train.max_cpu_minutes=null", "train.max_minutes=null", "train.log_every=1000"]
    assembled = assemble(load_recipe(recipe_path, overrides), root=data_root)
    graph = assembled.bundle.train.graph
    nodes = NodeDataset(graph, torch.arange(graph.num_nodes))  # every node per step, as benchmarks/graph.py
    recipe = load_recipe(recipe_path, [*overrides, f"train.batch_size={graph.num_nodes}"])
    assembled = dataclasses.replace(assembled, recipe=recipe, bundle=dataclasses.replace(assembled.bundle, train=nodes))
    with tempfile.TemporaryDirectory() as run_dir, profile() as prof:
        cpu0 = time.process_time()
        Trainer(assembled, Path(run_dir) / "run").fit()
        cpu_s = time.process_time() - cpu0
    ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in ops)
    top = [{"op": e.key, "share": round(e.self_cpu_time_total / total, 3), "calls_per_step": e.count / steps}
           for e in ops[:10]]
    return {"graph": {"nodes": graph.num_nodes, "features": graph.num_features,
                      "nonzero_fraction": float((graph.x != 0).float().mean())},
            "cpu_seconds_per_step": cpu_s / steps, "top_ops": top}, graph.x.float()


def input_projection(x: torch.Tensor, weight: torch.Tensor, *, sparse: bool, dropout: float) -> torch.Tensor:
    """``dropout(x) @ weightᵀ`` ``(N, F) → (N, D)``, on the dense ``x`` or on a CSR copy (dropout on its values)."""
    if not sparse:
        return torch.nn.functional.dropout(x, dropout) @ weight.t()
    csr = x.to_sparse_csr()  # converted every step: the corrupted input changes each step
    values = torch.nn.functional.dropout(csr.values(), dropout)
    return torch.sparse_csr_tensor(csr.crow_indices(), csr.col_indices(), values, csr.shape) @ weight.t()


def first_layer_ratio(x: torch.Tensor, *, width: int, repeats: int = 10, dropout: float = 0.2) -> dict:
    """Dense vs CSR input projection, forward + weight gradient, with the encoder's input dropout."""
    weight = torch.nn.Parameter(torch.randn(width, x.shape[1]) * 0.01)
    timings = {}
    for name, sparse in (("dense", False), ("csr", True)):
        for repeat in range(repeats + 1):  # the first call warms up and is not timed
            if repeat == 1:
                cpu0 = time.process_time()
            input_projection(x, weight, sparse=sparse, dropout=dropout).sum().backward()
        timings[name] = (time.process_time() - cpu0) / repeats
    return {"dense_cpu_s": timings["dense"], "csr_cpu_s": timings["csr"],
            "dense_over_csr": timings["dense"] / timings["csr"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "graph" / "graphmae.yaml")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--width", type=int, default=512, help="first layer's output width (GraphMAE: 512)")
    parser.add_argument("--data-root", default=os.environ.get("OMNISSL_DATA_DIR"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    found, x = profile_steps(args.recipe, args.steps, args.data_root)
    found["first_layer"] = first_layer_ratio(x, width=args.width)
    found["first_layer"]["share_of_step"] = found["first_layer"]["dense_cpu_s"] / found["cpu_seconds_per_step"]
    found.update({"recipe": str(args.recipe.resolve().relative_to(ROOT)), "steps": args.steps,
                  "load_average": os.getloadavg()[0],
                  "command": f"benchmarks/graph_step_profile.py --recipe {args.recipe} --steps {args.steps}"})
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"graph_step_profile.{args.recipe.stem}.json"
    out.write_text(json.dumps(found, indent=2), encoding="utf-8")
    print(json.dumps(found, indent=2))


if __name__ == "__main__":
    main()
