"""Speech benchmark: pretrain each speech recipe on FSDD's 2,700 training clips under a wall-clock budget, then run
the shared protocol (weighted k-NN + linear probe over seeds, on mean-pooled utterance embeddings) for the spoken
digit and for the speaker, on FSDD's official 300-clip test split, beside the baselines: the same architecture at
random init and the mean log-mel features of each clip (the bundle's ``raw_features``).

    OMNISSL_DATA_DIR=/work/shared/datasets .venv/bin/python benchmarks/speech.py --minutes 10 --threads 1

Each method writes ``benchmarks/results/speech.<method>.json``; every run then rewrites ``speech.md`` from all the
method files present, with the measured wall-clock and process CPU time of each pretraining.
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
from omnissl.train.assemble import assemble, build_data, random_init_encoders
from omnissl.train.runner import Trainer, read_metrics
from omnissl.workflows.evaluation import evaluate_encoders, legacy_rows

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
METHODS = ("wav2vec2", "masked_spectrogram", "cpc", "hubert")
LABELS = ("digit", "speaker")


def evaluate(encoders: dict[str, Any], bundle: Any, config: Any, *, device: torch.device, dataset_name: str,
             include_raw: bool = True) -> Any:
    """The engine (omnissl.workflows.evaluation), the same protocol as ``omnissl eval``."""
    kinds = {name: "random init" if "random init" in name else "ssl" for name in encoders}
    return evaluate_encoders(encoders, bundle, config, device=device, dataset_name=dataset_name,
                             include_raw=include_raw, kinds=kinds)


def run_method(method: str, *, minutes: float, steps: int | None, data_root: str | None,
               cpu_minutes: float | None = None) -> dict[str, Any]:
    budget = [f"train.max_minutes={minutes}"] if cpu_minutes is None else \
        ["train.max_minutes=null", f"train.max_cpu_minutes={cpu_minutes}"]
    overrides = [*budget, "train.checkpoint_every=0", "train.knn_every=0"]
    if steps is not None:
        overrides.append(f"train.steps={steps}")
    recipe = load_recipe(ROOT / "recipes" / "speech" / f"{method}.yaml", overrides)
    assembled = assemble(recipe, root=data_root)
    with tempfile.TemporaryDirectory() as run_dir:
        cpu_start, wall_start = time.process_time(), time.time()
        result = Trainer(assembled, Path(run_dir) / "run").fit()
        cpu_s, wall_s = time.process_time() - cpu_start, time.time() - wall_start
        records = [r for r in read_metrics(Path(run_dir) / "run") if "loss" in r]
    encoder = assembled.objective.towers["main"]
    random_init = random_init_encoders(recipe, assembled.bundle, seed=recipe.seed + 1)["main"]
    reports = {}
    for label in LABELS:
        labelled = load_recipe(ROOT / "recipes" / "speech" / f"{method}.yaml", overrides + [f"data.label={label}"])
        bundle = build_data(labelled, root=data_root)
        report = evaluate({f"{method} (pretrained)": encoder, f"{method} (random init)": random_init}, bundle,
                          recipe.eval, device=torch.device("cpu"), dataset_name=f"fsdd-{label}")
        reports[label] = {**report.to_json(), "rows": legacy_rows(report)}
        print(f"\n{method} — {label}\n{report.table()}", flush=True)
    return {"method": method, "recipe": f"recipes/speech/{method}.yaml", "overrides": overrides,
            "steps_done": result.steps_done, "stopped_because": result.stopped_because,
            "batch_size": recipe.train.batch_size, "wall_seconds": wall_s, "cpu_seconds": cpu_s,
            "threads": torch.get_num_threads(), "first_loss": records[0]["loss"] if records else None,
            "last_logs": result.last_logs, "reports": reports, "cpu_minutes_budget": cpu_minutes,
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def table() -> str:
    rows, raw = [], {}
    for method in METHODS:
        path = RESULTS / f"speech.{method}.json"
        if not path.is_file():
            continue
        result = json.loads(path.read_text())
        cells: dict[str, dict[str, str]] = {}
        for label, report in result["reports"].items():
            for row in report["rows"]:
                knn = " / ".join(f"{100 * v:.1f}" for v in row["knn"].values())
                probe = f"{100 * row['probe']['mean']:.1f} ± {100 * row['probe']['std']:.1f}"
                cells.setdefault(row["name"], {})[label] = f"{probe} | {knn}"
        limit = (f", budget {result['cpu_minutes_budget']:g} CPU-min" if result.get("cpu_minutes_budget")
                 else "")
        budget = (f"{result['steps_done']} steps × {result['batch_size']}, {result['wall_seconds'] / 60:.1f} wall-min, "
                  f"{result['cpu_seconds'] / 60:.1f} CPU-min ({result['threads']} thread{limit})")
        for name, by_label in cells.items():
            if name == "raw input":
                raw = by_label
                continue
            line = [name, by_label.get("digit", "– | –"), by_label.get("speaker", "– | –"),
                    budget if "pretrained" in name else "–"]
            rows.append("| " + " | ".join(line) + " |")
    if raw:
        rows.append("| mean log-mel (raw input, 64-d) | " + raw.get("digit", "– | –") + " | " + raw.get("speaker", "– | –")
                    + " | – |")
    header = ["features (mean-pooled)", "digit: linear probe %", "digit: k-NN % (k=10 / 50)",
              "speaker: linear probe %", "speaker: k-NN % (k=10 / 50)", "pretraining"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--minutes", type=float, default=10.0, help="wall-clock pretraining budget per method")
    parser.add_argument("--cpu-minutes", type=float, default=None,
                        help="CPU-time pretraining budget per method (train.max_cpu_minutes; replaces --minutes)")
    parser.add_argument("--steps", type=int, default=None, help="override the recipe's step count")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--table-only", action="store_true", help="only rewrite speech.md from the JSON files")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not args.table_only:
        for method in args.methods:
            result = run_method(method, minutes=args.minutes, steps=args.steps, data_root=args.data_root,
                                cpu_minutes=args.cpu_minutes)
            (RESULTS / f"speech.{method}.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    markdown = ("# Speech benchmark (FSDD, official 2,700 / 300 split)\n\n"
                "Linear probe: mean ± std over 3 seeds; k-NN: weighted, cosine. Utterance embedding = mean over "
                "valid frames/tokens. The pretraining column gives what each run actually used: steps × batch, "
                "wall-clock and process CPU time. `--minutes` is a wall-clock budget, so on a contended machine a "
                "run gets far fewer CPU-minutes than its budget: compare the CPU column, not the budget.\n\n"
                + table() + "\n")
    (RESULTS / "speech.md").write_text(markdown, encoding="utf-8")
    print(markdown)


if __name__ == "__main__":
    main()
