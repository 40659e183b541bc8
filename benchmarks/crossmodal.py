"""Cross-modal recipes: pretrain each for a fixed wall-clock budget, then retrieval (R@1/5/10 both ways, instance
and class match), zero-shot by class embedding, and each tower through the shared probe — beside random-init towers.

    OMNISSL_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/crossmodal.py --minutes 4 [--recipes NAME ...]

Writes benchmarks/results/crossmodal.{json,md} (``--out`` for another stem: the bind row lives in
``crossmodal_bind.{json,md}``, made with ``--recipes bind_image_audio_text --cpu-minutes 4 --out
benchmarks/results/crossmodal_bind``). ``--cpu-minutes`` budgets process CPU time instead of wall time, fair on a
shared machine. A recipe with three or more towers also gets a per-direction summary, the emergent pairs (towers
never trained together) marked.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from omnissl.core.config import load_recipe
from omnissl.train.assemble import assemble
from omnissl.train.runner import Trainer
from omnissl.workflows.session import evaluate_assembled

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ["clip_image_audio", "clip_image_text", "siglip_audio_text", "bind_image_audio_text"]


def run(name: str, minutes: float, eval_train: int, eval_test: int, cpu_minutes: float | None = None
        ) -> dict[str, object]:
    budget = ([f"train.max_cpu_minutes={cpu_minutes}", "train.max_minutes=null"] if cpu_minutes is not None
              else [f"train.max_minutes={minutes}"])
    overrides = [*budget, "train.knn_every=0", f"eval.max_train_samples={eval_train}",
                 f"eval.max_test_samples={eval_test}"]
    recipe = load_recipe(ROOT / "recipes" / "multimodal" / f"{name}.yaml", overrides)
    with tempfile.TemporaryDirectory() as tmp:
        assembled = assemble(recipe)
        began, cpu = time.perf_counter(), time.process_time()
        result = Trainer(assembled, Path(tmp) / "run").fit()
        wall, cpu = time.perf_counter() - began, time.process_time() - cpu
        began_eval, cpu_eval = time.perf_counter(), time.process_time()
        reports = evaluate_assembled(assembled, trained=True, device=recipe.train.device)
        eval_wall, eval_cpu = time.perf_counter() - began_eval, time.process_time() - cpu_eval
    out = {"recipe": name, "steps_done": result.steps_done, "steps_planned": recipe.train.steps,
           "wall_s": round(wall), "cpu_s": round(cpu), "eval_wall_s": round(eval_wall), "eval_cpu_s": round(eval_cpu),
           "budget": budget[0], "batch_size": recipe.train.batch_size,
           "reports": {k: r.to_json() for k, r in reports.items()}, "tables": {k: r.table() for k, r in reports.items()}}
    if len(recipe.towers) > 2 and "retrieval" in reports:
        out["directions"] = directions(reports["retrieval"].to_json())
    return out


def directions(table: dict[str, Any]) -> list[dict[str, Any]]:
    """One record per (row, retrieval direction): class R@k, instance R@1 and zero-shot, from the table's headings
    ``"<q>→<g>[ (emergent)] <by> R@k"`` and ``"zero-shot <q> by <g>[ (emergent)]"``."""
    records: dict[tuple[str, str], dict[str, Any]] = {}
    for row in table["rows"]:
        columns = {h: v["mean"] for cell in row["cells"].values() for h, v in cell.get("columns", {}).items()}
        for heading, value in columns.items():
            base = heading.replace(" (emergent)", "")
            if base.startswith("zero-shot "):
                query, gallery = base.removeprefix("zero-shot ").split(" by ")
                key, metric = f"{query}→{gallery}", "zero-shot"
            else:
                key, by, k = base.rsplit(" ", 2)  # "audio→text class R@1"
                metric = f"{by} {k}"
            record = records.setdefault((row["name"], key), {"row": row["name"], "direction": key,
                                                             "emergent": "(emergent)" in heading})
            record[metric] = value
    return list(records.values())


def direction_table(records: list[dict[str, Any]]) -> str:
    metrics = ["class R@1", "class R@5", "instance R@1", "zero-shot"]
    lines = ["| direction | trained together? | row | " + " | ".join(metrics) + " |", "|" + "---|" * (3 + len(metrics))]
    for r in sorted(records, key=lambda r: (not r["emergent"], r["direction"], r["row"])):
        cells = [f"{100 * r[m]:.2f}" if m in r else "—" for m in metrics]
        together = "no (emergent)" if r["emergent"] else "yes"
        lines.append(f"| {r['direction']} | {together} | {r['row']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="+", default=RECIPES, choices=RECIPES)
    parser.add_argument("--minutes", type=float, default=8.0, help="wall-clock pretraining budget per recipe")
    parser.add_argument("--cpu-minutes", type=float, default=None,
                        help="process-CPU pretraining budget per recipe (replaces --minutes' wall-clock budget)")
    parser.add_argument("--eval-train", type=int, default=2000)
    parser.add_argument("--eval-test", type=int, default=1000)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/crossmodal"))
    args = parser.parse_args()
    load_before = os.getloadavg()
    results = [run(name, args.minutes, args.eval_train, args.eval_test, args.cpu_minutes) for name in args.recipes]
    load_after = os.getloadavg()
    for r in results:
        r["load_average_1_5_15"] = {"before": [round(x, 2) for x in load_before],
                                    "after": [round(x, 2) for x in load_after]}
    Path(args.out + ".json").write_text(json.dumps([{k: v for k, v in r.items() if k != "tables"} for r in results],
                                                   indent=2))
    lines = ["# Cross-modal recipes", "",
             f"Command: `OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} OMNISSL_DATA_DIR=../shared/datasets "
             f".venv/bin/python benchmarks/crossmodal.py "
             + (f"--cpu-minutes {args.cpu_minutes}" if args.cpu_minutes is not None else f"--minutes {args.minutes}")
             + f" --eval-train {args.eval_train} --eval-test {args.eval_test} --recipes {' '.join(args.recipes)}"
             + (f" --out {args.out}" if args.out != parser.get_default("out") else "") + "`", "",
             (f"Machine: {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads. Pairs are "
             "label-derived (see the README). Retrieval on held-out test pairs; zero-shot classes from train pairs."),
             "", (f"Load average (1/5/15 min): {' '.join(f'{x:.2f}' for x in load_before)} before, "
             f"{' '.join(f'{x:.2f}' for x in load_after)} after (the machine is shared; CPU seconds are this process's)."),
             ""]
    for r in results:
        lines += [(f"## {r['recipe']} — {r['steps_done']}/{r['steps_planned']} steps, {r['wall_s']} s wall, "
                  f"{r['cpu_s']} s CPU"), ""]
        if "directions" in r:
            lines += [(f"Every retrieval direction (train {r['cpu_s']} s CPU, eval {r['eval_cpu_s']} s CPU; "
                      "class R@k: a retrieved item of the query's digit; instance: its own pair):"), "",
                      direction_table(r["directions"]), ""]  # type: ignore[arg-type]
        for tower, table in r["tables"].items():  # type: ignore[union-attr]
            lines += [f"**{tower}**", "", table, ""]
    Path(args.out + ".md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
