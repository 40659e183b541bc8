"""Evaluation-engine targets (issue 18), measured through the real CLI:

1. ``omnissl train recipes/image/simclr.yaml train.steps=20`` end to end, first in a fresh run root (baselines
   computed) and again in the same root (random-init and raw rows read from ``RUN_ROOT/.cache/baselines``), with the
   probe numbers of both runs (they must agree: the trained row is recomputed, the baselines are the cached cells).
2. ``omnissl eval`` on a TS2Vec run reports the RBF-SVM accuracy ``benchmarks/timeseries.py`` reports for the same
   seed and steps (the benchmark's own function ``run_one`` is called for the reference number).

    OMNISSL_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/eval_engine.py            # the targets
    OMNISSL_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/eval_engine.py --tiny     # provisional, small
    OMNISSL_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/eval_engine.py --protocol-check FILE.json

``--protocol-check`` records the published protocols' numbers on tiny settings (before/after a change to the
evaluation code; ``benchmarks/results/eval_engine_before.json`` was written before the engine existed).

``--tiny`` limits the image evaluation to 2,000 train / 1,000 test images (the timing targets are for the full run:
the lead reruns it on a quiet machine). Writes ``<out>.json`` and ``<out>.md`` with wall and CPU seconds and the
machine's load (``uptime``) before each measured command.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OMNISSL = [sys.executable, "-m", "omnissl.cli.main"]
TINY = ["eval.max_train_samples=2000", "eval.max_test_samples=1000"]


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def timed(command: list[str]) -> dict[str, Any]:
    """Run one CLI command; wall seconds, children's CPU seconds, the load before it, and its exit status."""
    load = uptime()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return {"command": " ".join(["omnissl", *command[3:]]), "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "uptime_before": load, "cached_cells": done.stderr.count("(cached)")}


def main_cells(run_dir: Path) -> dict[str, dict[str, Any]]:
    table = json.loads((run_dir / "eval.json").read_text(encoding="utf-8"))["main"]
    return {row["name"]: {p: c["score"] for p, c in row["cells"].items()} for row in table["rows"]}


def image_target(root: Path, tiny: bool) -> dict[str, Any]:
    extra = [*TINY] if tiny else []
    runs = {}
    for label in ("first", "cached"):
        run_dir = root / f"simclr-{label}"
        runs[label] = timed([*OMNISSL, "train", "recipes/image/simclr.yaml", "train.steps=20", *extra,
                             "--run-dir", str(run_dir), "--no-estimate"])
        runs[label]["scores"] = main_cells(run_dir)
    probe = {label: {name: cells.get("linear_probe", {}).get("mean") for name, cells in r["scores"].items()}
             for label, r in runs.items()}
    same = all(abs((probe["first"][n] or 0) - (probe["cached"].get(n) or 0)) <= 0.003 for n in probe["first"])
    return {"runs": runs, "probe": probe, "probe_within_0.3_points": same, "tiny": tiny}


def timeseries_target(root: Path, seed: int, steps: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import timeseries  # the benchmark's own measurement, for the reference number

    reference = timeseries.run_one("ts2vec", "GunPoint", seed, [f"train.steps={steps}"])["svm"]["accuracy"]
    run_dir = root / "ts2vec"
    overrides = [f"train.steps={steps}", f"seed={seed}", "train.checkpoint_every=0", "train.knn_every=0"]
    train = timed([*OMNISSL, "train", "recipes/timeseries/ts2vec.yaml", *overrides, "--run-dir", str(run_dir),
                   "--no-eval", "--no-estimate"])
    evaluated = timed([*OMNISSL, "eval", str(run_dir)])
    svm = main_cells(run_dir)["ts2vec (trained)"]["ts_rbf_svm"]["mean"]
    return {"train": train, "eval": evaluated, "omnissl_eval_svm": svm, "benchmark_svm": reference,
            "equal_to_3_decimals": round(svm, 3) == round(reference, 3), "seed": seed, "steps": steps}


def protocol_check() -> dict[str, Any]:
    """The published protocols on the smallest settings that give a number (seed 0, one thread), through the
    benchmarks' own functions: TS2Vec on GunPoint for 20 steps (RBF-SVM), GraphCL on MUTAG for 2 epochs (SVM
    10-fold), GRACE on Cora for 3 steps (public split), each beside random init and raw features. Run before and
    after a change to the evaluation code: the numbers must not move."""
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import graph as gb
    import timeseries as ts

    torch.set_num_threads(1)
    out: dict[str, Any] = {}
    began = time.process_time()
    row = ts.run_one("ts2vec", "GunPoint", 0, ["train.steps=20"])
    out["ts2vec_GunPoint_steps20_seed0"] = {"svm": row["svm"], "random_init_svm": row["random_init_svm"],
                                            "steps": row["steps"]}
    out["ts_raw_GunPoint"] = ts.raw_baseline("GunPoint")["svm"]
    gb.TU_METHODS["graphcl"] = ("graphcl.yaml", 2)  # 2 epochs of MUTAG = 3 steps of 128 graphs
    r = gb.pretrain("MUTAG", "graphcl", 0, 30.0, None)
    out["graphcl_MUTAG"] = {"accuracy": r["accuracy"], "random_init": r["random_init_accuracy"],
                            "steps": r["steps_done"], "batch": r["batch_size"]}
    out["graph_raw_MUTAG"] = gb.raw_baseline("MUTAG", r["_bundle"], 0, r["_recipe"])
    gb.CORA_METHODS["grace"] = ("grace.yaml", 3)
    r = gb.pretrain("Cora", "grace", 0, 30.0, None)
    out["grace_Cora"] = {"accuracy": r["accuracy"], "random_init": r["random_init_accuracy"],
                         "steps": r["steps_done"], "batch": r["batch_size"]}
    out["cora_raw"] = gb.raw_baseline("Cora", r["_bundle"], 0, r["_recipe"])
    out["cpu_s"] = time.process_time() - began
    return out


def markdown(result: dict[str, Any]) -> str:
    lines = ["# Evaluation engine targets (issue 18)", "", f"Command: `{result['command']}`", ""]
    image = result.get("image")
    if image:
        lines += [f"## `omnissl train recipes/image/simclr.yaml train.steps=20`{' (--tiny)' if image['tiny'] else ''}",
                  "", "| run | wall s | CPU s | cached cells | load before |", "|---|---:|---:|---:|---|"]
        for label, r in image["runs"].items():
            lines.append(f"| {label} | {r['wall_s']} | {r['cpu_s']} | {r['cached_cells']} | {r['uptime_before']} |")
        lines += ["", "| row | linear probe, first | linear probe, cached |", "|---|---:|---:|"]
        for name, value in image["probe"]["first"].items():
            other = image["probe"]["cached"].get(name)
            lines.append(f"| {name} | {100 * (value or 0):.2f} | {100 * (other or 0):.2f} |")
        lines += ["", f"Probe numbers agree within 0.3 points: {image['probe_within_0.3_points']}.", ""]
    ts = result.get("timeseries")
    if ts:
        lines += ["## `omnissl eval` on a TS2Vec run vs `benchmarks/timeseries.py`", "",
                  f"GunPoint, seed {ts['seed']}, {ts['steps']} steps: omnissl eval RBF-SVM "
                  f"{ts['omnissl_eval_svm']:.4f}, benchmark {ts['benchmark_svm']:.4f} (equal to 3 decimals: "
                  f"{ts['equal_to_3_decimals']}); train {ts['train']['wall_s']} s wall / {ts['train']['cpu_s']} s CPU, "
                  f"eval {ts['eval']['wall_s']} s wall / {ts['eval']['cpu_s']} s CPU.", ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="small image evaluation subsets (provisional numbers)")
    parser.add_argument("--skip-image", action="store_true")
    parser.add_argument("--skip-timeseries", action="store_true")
    parser.add_argument("--ts-steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "eval_engine"))
    parser.add_argument("--protocol-check", metavar="FILE", help="only write protocol_check()'s numbers to FILE")
    args = parser.parse_args(argv)
    if args.protocol_check:
        Path(args.protocol_check).write_text(json.dumps(protocol_check(), indent=1, default=str), encoding="utf-8")
        return 0
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    result: dict[str, Any] = {"command": "OMNISSL_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/eval_engine.py "
                                         + " ".join(sys.argv[1:] if argv is None else argv), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="eval-engine-") as tmp:
        if not args.skip_timeseries:
            result["timeseries"] = timeseries_target(Path(tmp) / "ts-runs", args.seed, args.ts_steps)
            print(json.dumps(result["timeseries"], indent=1), flush=True)
        if not args.skip_image:
            result["image"] = image_target(Path(tmp) / "image-runs", args.tiny)
            print(json.dumps(result["image"], indent=1), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{out}.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    Path(f"{out}.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
