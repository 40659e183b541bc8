"""The authors' TS2Vec code, run on this machine beside ours: accuracy and CPU seconds of one training run per set.

    git clone https://github.com/yuezhihan/ts2vec /tmp/ts2vec   # not shipped: a checkout you provide
    OMNISSL_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/ts2vec_reference.py --reference-repo /tmp/ts2vec

What ``train.py <set> run --loader UCR|UEA --eval`` does, without its file loaders (the shared data is ``.npz``):
series as ``(N, T, C)`` with NaN past each series' length; UEA sets standardised per channel on train (their
``load_UEA``), the three UCR sets left as stored (``load_UCR`` normalises only the sets it lists, none of these);
``TS2Vec(output_dims=320, batch_size=8, lr=1e-3, max_train_length=3000)`` and ``fit`` with its default iteration
count; their ``fit_svm`` on ``encode(..., encoding_window='full_series')``. One thread; CPU time of ``fit`` only.
The JSON (``ts2vec_reference.json``) is what ``benchmarks/timeseries.py --budget reference`` caps our runs with.
``--step-ratio`` times 200 steps of our recipe and 200 of theirs per set in one process (``ts2vec_reference_steps.json``):
the per-step cost ratio, free of the accuracy noise of seeds.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"
UEA = ("BasicMotions", "JapaneseVowels")
DATASETS = ("GunPoint", "ItalyPowerDemand", "ArrowHead", "BasicMotions", "JapaneseVowels")


def load(dataset: str, data_root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(train (N, T, C), train labels, test, test labels)`` from ``timeseries/<set>/<set>.npz``."""
    stored = np.load(data_root / "timeseries" / dataset / f"{dataset}.npz")
    train, test = (stored[f"X_{s}"].transpose(0, 2, 1).astype(np.float64) for s in ("train", "test"))
    if dataset in UEA:  # their load_UEA: StandardScaler over every (series, step) row of train, per channel
        mean, std = np.nanmean(train, axis=(0, 1)), np.nanstd(train, axis=(0, 1))
        train, test = (train - mean) / std, (test - mean) / std
    return train, stored["y_train"], test, stored["y_test"]


def reference_model(input_dims: int) -> Any:
    """Their ``TS2Vec`` as ``train.py`` builds it for UCR/UEA (the checkout is on ``sys.path``: see main)."""
    from ts2vec import TS2Vec

    return TS2Vec(input_dims=input_dims, device="cpu", batch_size=8, lr=0.001, output_dims=320, max_train_length=3000)


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def run(repo: Path, dataset: str, seed: int, data_root: Path) -> dict[str, Any]:
    protocols = importlib.util.spec_from_file_location("ts2vec_eval_protocols", repo / "tasks" / "_eval_protocols.py")
    eval_protocols = importlib.util.module_from_spec(protocols)
    protocols.loader.exec_module(eval_protocols)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    train, train_y, test, test_y = load(dataset, data_root)
    model = reference_model(train.shape[-1])
    began = time.process_time()
    losses = model.fit(train, verbose=False)
    cpu_s = time.process_time() - began
    svm = eval_protocols.fit_svm(model.encode(train, encoding_window="full_series"), train_y)
    accuracy = float(svm.score(model.encode(test, encoding_window="full_series"), test_y))
    return {"dataset": dataset, "seed": seed, "accuracy": accuracy, "train_cpu_s": round(cpu_s, 1),
            "epochs": len(losses), "load_average": [round(x, 2) for x in os.getloadavg()]}


def step_ratio(repo: Path, dataset: str, data_root: Path, *, steps: int = 200) -> dict[str, Any]:
    """CPU seconds of ``steps`` optimizer steps of our recipe (the runner's own loop clock) and of the reference's
    ``fit(n_iters=steps)``, in one process, one after the other; ``torch._dynamo`` (imported by the first optimizer
    of a process, about a second) is imported beforehand so neither side pays it."""
    import tempfile

    import torch._dynamo  # imported for its side effect: the one-off import cost stays outside both timings

    from omnissl.core.config import load_recipe
    from omnissl.train.assemble import assemble
    from omnissl.train.runner import train

    recipe = load_recipe(Path(__file__).resolve().parents[1] / "recipes" / "timeseries" / "ts2vec.yaml",
                         [f"data.dataset={dataset}", f"train.steps={steps}", "train.checkpoint_every=0",
                          "train.knn_every=0", "train.max_cpu_minutes=null", f"train.log_every={steps}"])
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as run_dir:
        ours = train(assemble(recipe, root=data_root), Path(run_dir) / "run")
    train_data = load(dataset, data_root)[0]
    torch.manual_seed(0)
    model = reference_model(train_data.shape[-1])
    began = time.process_time()
    model.fit(train_data, n_iters=steps)
    reference = time.process_time() - began
    return {"dataset": dataset, "steps": steps, "ours_cpu_s": round(ours.cpu_seconds, 2),
            "reference_cpu_s": round(reference, 2), "ours_over_reference": round(ours.cpu_seconds / reference, 3),
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference-repo", type=Path, required=True, help="a checkout of yuezhihan/ts2vec")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--data-root", type=Path, default=Path(os.environ.get("OMNISSL_DATA_DIR", "../shared/datasets")))
    parser.add_argument("--out", type=Path, default=None, help="default: results/ts2vec_reference[_steps].json")
    parser.add_argument("--step-ratio", action="store_true", help="only time 200 steps of ours and of theirs per set")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sys.path.insert(0, str(args.reference_repo.resolve()))
    if args.step_ratio:
        rows = [step_ratio(args.reference_repo, d, args.data_root) for d in args.datasets]
        for row in rows:
            print(row, flush=True)
        out = args.out or RESULTS / "ts2vec_reference_steps.json"
        out.write_text(json.dumps({"command": " ".join(sys.argv), "threads": 1, "rows": rows,
                                   "uptime_at_end": uptime()}, indent=2), encoding="utf-8")
        print(f"wrote {out}")
        return
    commit = subprocess.run(["git", "-C", str(args.reference_repo), "rev-parse", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip() or "unknown (not a git checkout)"
    started = uptime()
    runs = [run(args.reference_repo, d, s, args.data_root) for d in args.datasets for s in range(args.seeds)]
    summary = {}
    for dataset in args.datasets:
        mine = [r for r in runs if r["dataset"] == dataset]
        acc = [r["accuracy"] for r in mine]
        summary[dataset] = {"accuracy": round(statistics.mean(acc), 4),
                            "accuracy_std": round(statistics.stdev(acc), 4) if len(acc) > 1 else 0.0,
                            "train_cpu_s": round(statistics.mean(r["train_cpu_s"] for r in mine), 1)}
        print(dataset, summary[dataset], flush=True)
    out = args.out or RESULTS / "ts2vec_reference.json"
    out.write_text(json.dumps({"command": " ".join(sys.argv), "reference_commit": commit, "threads": 1,
                               "uptime_at_start": started, "summary": summary, "runs": runs}, indent=2),
                   encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
