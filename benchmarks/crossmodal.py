"""Cross-modal recipes: pretrain each for a fixed wall-clock budget, then retrieval (R@1/5/10 both ways, instance
and class match), zero-shot by class embedding, and each tower through the shared probe — beside random-init towers.

    OMNISSL_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/crossmodal.py --minutes 4 [--recipes NAME ...]

Writes benchmarks/results/crossmodal.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from omnissl.train.assemble import assemble
from omnissl.core.config import load_recipe
from omnissl.workflows.session import evaluate_assembled
from omnissl.train.runner import Trainer

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ["clip_image_audio", "clip_image_text", "siglip_audio_text"]


def run(name: str, minutes: float, eval_train: int, eval_test: int) -> dict[str, object]:
    overrides = [f"train.max_minutes={minutes}", "train.knn_every=0", f"eval.max_train_samples={eval_train}",
                 f"eval.max_test_samples={eval_test}"]
    recipe = load_recipe(ROOT / "recipes" / "multimodal" / f"{name}.yaml", overrides)
    with tempfile.TemporaryDirectory() as tmp:
        assembled = assemble(recipe)
        began, cpu = time.perf_counter(), time.process_time()
        result = Trainer(assembled, Path(tmp) / "run").fit()
        wall, cpu = time.perf_counter() - began, time.process_time() - cpu
        reports = evaluate_assembled(assembled, trained=True, device=recipe.train.device)
    return {"recipe": name, "steps_done": result.steps_done, "steps_planned": recipe.train.steps,
            "wall_s": round(wall), "cpu_s": round(cpu), "reports": {k: r.to_json() for k, r in reports.items()},
            "tables": {k: r.table() for k, r in reports.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="+", default=RECIPES, choices=RECIPES)
    parser.add_argument("--minutes", type=float, default=8.0, help="wall-clock pretraining budget per recipe")
    parser.add_argument("--eval-train", type=int, default=2000)
    parser.add_argument("--eval-test", type=int, default=1000)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/crossmodal"))
    args = parser.parse_args()
    results = [run(name, args.minutes, args.eval_train, args.eval_test) for name in args.recipes]
    Path(args.out + ".json").write_text(json.dumps([{k: v for k, v in r.items() if k != "tables"} for r in results],
                                                   indent=2))
    lines = ["# Cross-modal recipes", "",
             f"Command: `OMNISSL_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/crossmodal.py --minutes "
             f"{args.minutes} --eval-train {args.eval_train} --eval-test {args.eval_test} --recipes "
             f"{' '.join(args.recipes)}`", "",
             f"Machine: {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads. Pairs are "
             "label-derived (see the README). Retrieval on held-out test pairs; zero-shot classes from train pairs.",
             ""]
    for r in results:
        lines += [f"## {r['recipe']} — {r['steps_done']}/{r['steps_planned']} steps, {r['wall_s']} s wall, "
                  f"{r['cpu_s']} s CPU", ""]
        for tower, table in r["tables"].items():  # type: ignore[union-attr]
            lines += [f"**{tower}**", "", table, ""]
    Path(args.out + ".md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
