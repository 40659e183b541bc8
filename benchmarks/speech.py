"""Speech benchmark: pretrain each speech recipe on FSDD's 2,700 training clips under a CPU-time budget, then run
the shared protocol (weighted k-NN + linear probe over seeds, on mean-pooled utterance embeddings) for the spoken
digit and for the speaker, on FSDD's official 300-clip test split, beside the baselines: the same architecture at
random init and the mean log-mel features of each clip (the bundle's ``raw_features``).

    # choose settings: a trial per call, scored on a stratified 20 % carve of the training clips (test never read)
    OMNISSL_DATA_DIR=/work/shared/datasets .venv/bin/python benchmarks/speech.py --select-on val --cpu-minutes 4 \
        --methods hubert --trial mask65 --override objective.mask_ratio=0.65
    # the chosen settings on test, 3 pretraining seeds
    OMNISSL_DATA_DIR=/work/shared/datasets .venv/bin/python benchmarks/speech.py --cpu-minutes 12 --seeds 3 \
        --methods hubert --override objective.mask_ratio=0.65

With ``--cpu-minutes`` the schedule is fitted to the budget: a short timed calibration (outside the budget) gives the
CPU seconds per step and ``train.steps`` is set so the run ends when the budget does (``train.max_cpu_minutes`` is the
hard cap; HuBERT's second iteration starts at half the planned steps). Each method writes
``benchmarks/results/speech.<method>.json``; every run rewrites ``speech.md`` from all the method files present.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from cpu_budget import step_cpu_seconds  # benchmarks/ is on sys.path: run as a script

from omnissl.core.config import load_recipe
from omnissl.data.tensors import Subset
from omnissl.eval.readout import BlockReadout
from omnissl.eval.splits import validation_split
from omnissl.train.assemble import assemble, build_data, random_init_encoders
from omnissl.train.runner import Trainer, read_metrics
from omnissl.workflows.evaluation import evaluate_encoders, legacy_rows

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
METHODS = ("wav2vec2", "masked_spectrogram", "cpc", "hubert", "simclr", "data2vec")
LABELS = ("digit", "speaker")


def evaluate(encoders: dict[str, Any], bundle: Any, config: Any, *, device: torch.device, dataset_name: str,
             include_raw: bool = True) -> Any:
    """The engine (omnissl.workflows.evaluation), the same protocol as ``omnissl eval``."""
    kinds = {name: "random init" if "random init" in name else "ssl" for name in encoders}
    return evaluate_encoders(encoders, bundle, config, device=device, dataset_name=dataset_name,
                             include_raw=include_raw, kinds=kinds)


def budget_overrides(method: str, args: argparse.Namespace) -> tuple[list[str], dict[str, Any]]:
    """The recipe overrides that set this run's budget, and what the calibration planned."""
    fixed = ["train.checkpoint_every=0", "train.knn_every=0", *args.override]
    if args.cpu_minutes is None:
        steps = [f"train.steps={args.steps}"] if args.steps is not None else []
        return [f"train.max_minutes={args.minutes}", *fixed, *steps], {}
    recipe = load_recipe(ROOT / "recipes" / "speech" / f"{method}.yaml", fixed)
    step_s = step_cpu_seconds(recipe, data_root=args.data_root, steps=4)
    refines = (recipe.objective.name == "hubert" and getattr(recipe.objective, "refine_at_step", None) is not None
               and not any(o.startswith("objective.refine_at_step=") for o in args.override))
    if refines:  # the second iteration also runs the frozen snapshot for its targets: time both halves
        second = load_recipe(ROOT / "recipes" / "speech" / f"{method}.yaml", [*fixed, "objective.refine_at_step=1"])
        step_s = (step_s + step_cpu_seconds(second, data_root=args.data_root, steps=4)) / 2
    steps = max(10, int(args.cpu_minutes * 60 * 0.97 / step_s))
    planned = [f"train.steps={steps}", f"train.warmup_steps={min(recipe.train.warmup_steps, steps // 10)}",
               "train.max_minutes=null", f"train.max_cpu_minutes={args.cpu_minutes}"]
    if refines:
        planned.append(f"objective.refine_at_step={steps // 2}")
    return [*fixed, *planned], {"calibrated_step_cpu_s": round(step_s, 4), "planned_steps": steps}


def pretrain(method: str, overrides: list[str], *, seed: int, data_root: str | None) -> tuple[Any, Any, dict]:
    recipe = load_recipe(ROOT / "recipes" / "speech" / f"{method}.yaml", [*overrides, f"seed={seed}"])
    assembled = assemble(recipe, root=data_root)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as run_dir:
        cpu_start, wall_start = time.process_time(), time.time()
        result = Trainer(assembled, Path(run_dir) / "run").fit()
        cpu_s, wall_s = time.process_time() - cpu_start, time.time() - wall_start
        records = [r for r in read_metrics(Path(run_dir) / "run") if "loss" in r]
    run = {"seed": seed, "steps_done": result.steps_done, "stopped_because": result.stopped_because,
           "wall_seconds": wall_s, "cpu_seconds": cpu_s, "first_loss": records[0]["loss"] if records else None,
           "last_logs": result.last_logs, "load_average_before_after": [round(load_before, 2),
                                                                        round(os.getloadavg()[0], 2)]}
    print(f"[{method} seed {seed}] {result.steps_done} steps, {cpu_s:.0f} CPU-s ({result.stopped_because})", flush=True)
    return recipe, assembled, run


def labelled_bundle(method: str, overrides: list[str], label: str, data_root: str | None, *, validation: bool) -> Any:
    bundle = build_data(load_recipe(ROOT / "recipes" / "speech" / f"{method}.yaml", [*overrides, f"data.label={label}"]),
                        root=data_root)
    if not validation:
        return bundle
    carve = validation_split(bundle.train, bundle, fraction=0.2, seed=0)
    return dataclasses.replace(bundle, train=Subset(bundle.train, carve.fit.tolist()),
                               test=Subset(bundle.train, carve.val.tolist()))


def readouts(method: str, encoder: Any, kind: str, args: argparse.Namespace, *, validation: bool) -> dict[str, Any]:
    """The rows to score for one encoder. ``--scan-blocks`` (validation): the final output and every block's
    (:class:`BlockReadout`), to choose the readout on validation; ``--readout-block K`` (test): block K under the
    plain name, which the README table reads, and the final output beside it."""
    if validation and args.scan_blocks:
        depth = len(getattr(getattr(encoder, "trunk", None), "blocks", []))
        if not depth:
            raise SystemExit(f"--scan-blocks: {method}'s encoder {type(encoder).__name__} has no transformer trunk")
        return {f"{method} ({kind})": encoder,
                **{f"{method} ({kind}, block {k})": BlockReadout(encoder, block=k) for k in range(1, depth + 1)}}
    if args.readout_block is not None:
        return {f"{method} ({kind})": BlockReadout(encoder, block=args.readout_block),
                f"{method} ({kind}, final output)": encoder}
    return {f"{method} ({kind})": encoder}


def mean_rows(per_seed: list[dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Rows (by name) averaged over pretraining seeds: probe mean ± std over the seeds' probe means (one seed: its
    probe-seed spread), k-NN averaged; the raw-input row is the same every seed and comes from the first."""
    out = []
    for name, first in per_seed[0].items():
        rows = [seed[name] for seed in per_seed if name in seed]
        if len(rows) == 1:
            out.append(first)
            continue
        means = [r["probe"]["mean"] for r in rows]
        knn = {k: statistics.fmean(r["knn"][k] for r in rows) for k in first["knn"]}
        out.append({**first, "knn": knn, "probe": {"mean": statistics.fmean(means), "std": statistics.stdev(means),
                                                     "over": f"{len(rows)} pretraining seeds"}})
    return out


def run_method(method: str, args: argparse.Namespace) -> dict[str, Any]:
    overrides, plan = budget_overrides(method, args)
    validation = args.select_on == "val"
    runs: list[dict[str, Any]] = []
    per_label: dict[str, list[dict[str, Any]]] = {label: [] for label in LABELS}
    bundles = {label: labelled_bundle(method, overrides, label, args.data_root, validation=validation)
               for label in LABELS}  # the same clips and labels for every seed: read once
    for seed in range(args.seeds):
        recipe, assembled, run = pretrain(method, overrides, seed=seed, data_root=args.data_root)
        encoders = readouts(method, assembled.objective.towers["main"], "pretrained", args, validation=validation)
        if not validation:
            random_init = random_init_encoders(recipe, assembled.bundle, seed=seed + 1)["main"]
            encoders.update(readouts(method, random_init, "random init", args, validation=False))
        for label, bundle in bundles.items():
            report = evaluate(encoders, bundle, recipe.eval, device=torch.device("cpu"), include_raw=seed == 0,
                              dataset_name=f"fsdd-{label}" + (" (validation carve)" if validation else ""))
            per_label[label].append({row["name"]: row for row in legacy_rows(report)})
            print(f"\n{method} seed {seed} — {label}\n{report.table()}", flush=True)
        runs.append(run)
    cpu = [r["cpu_seconds"] for r in runs]
    return {"method": method, "recipe": f"recipes/speech/{method}.yaml", "overrides": overrides,
            "settings": list(args.override), "trial": args.trial, "readout_block": args.readout_block, **plan,
            "runs": runs,
            "steps_done": runs[0]["steps_done"], "stopped_because": runs[0]["stopped_because"],
            "batch_size": recipe.train.batch_size, "wall_seconds": statistics.fmean(r["wall_seconds"] for r in runs),
            "cpu_seconds": statistics.fmean(cpu), "threads": torch.get_num_threads(),
            "pretraining_seeds": args.seeds, "cpu_minutes_budget": args.cpu_minutes,
            "command": " ".join(["benchmarks/speech.py", *sys.argv[1:]]),
            "reports": {label: {"rows": mean_rows(rows)} for label, rows in per_label.items()},
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def _probe_cells(row: dict[str, Any]) -> str:
    knn = " / ".join(f"{100 * v:.1f}" for v in row["knn"].values())
    return f"{100 * row['probe']['mean']:.1f} ± {100 * row['probe']['std']:.1f} | {knn}"


def _pretraining(result: dict[str, Any]) -> str:
    runs = result.get("runs") or [result]
    steps = "/".join(str(r["steps_done"]) for r in runs)
    cpu = "/".join(f"{r['cpu_seconds'] / 60:.1f}" for r in runs)
    load = result.get("load_average", ["?"])[0]
    limit = f", budget {result['cpu_minutes_budget']:g} CPU-min" if result.get("cpu_minutes_budget") else ""
    seeds = f"{len(runs)} seeds: " if len(runs) > 1 else ""
    return (f"{seeds}{steps} steps × {result['batch_size']}, {cpu} CPU-min ({result['threads']} thread{limit}, "
            f"load {load})")


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
                cells.setdefault(row["name"], {})[label] = _probe_cells(row)
        settings = " ".join(result.get("settings", [])) or "as shipped"
        if result.get("readout_block"):
            settings += f"; readout block {result['readout_block']} (final output below it)"
        for name, by_label in cells.items():
            if name == "raw input":
                raw = by_label
                continue
            trained = "pretrained" in name
            line = [name, by_label.get("digit", "– | –"), by_label.get("speaker", "– | –"),
                    settings if trained else "–", _pretraining(result) if trained else "–"]
            rows.append("| " + " | ".join(line) + " |")
    if raw:
        rows.append("| mean log-mel (raw input, 64-d) | " + raw.get("digit", "– | –") + " | " + raw.get("speaker", "– | –")
                    + " | – | – |")
    header = ["features (mean-pooled)", "digit: linear probe %", "digit: k-NN % (k=10 / 50)",
              "speaker: linear probe %", "speaker: k-NN % (k=10 / 50)", "settings (chosen on validation)",
              "pretraining"]
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *rows])


def write_sweep(trials: list[dict[str, Any]]) -> None:
    lines = ["# Speech: settings chosen on validation", "",
             ("Each trial: the recipe with the listed overrides, pretrained on all 2,700 FSDD training clips "
              "(unlabelled) for the CPU budget shown, then the shared probe fitted on a stratified 80 % of the "
              "training clips and scored on the other 20 % (seed 0 carve per label; the 300 test clips are never "
              "read). Per method, the trial with the best mean of the digit and speaker validation probes is run on "
              "test (speech.md)."), "",
             ("| method | trial | overrides | steps | CPU-min | load | digit val probe | speaker val probe | mean | "
              "best readout (mean val probe) | command |"), "|---|---|---|---|---|---|---|---|---|---|---|"]
    for t in trials:
        probes = [t["reports"][label]["rows"][0]["probe"]["mean"] for label in LABELS]
        best = max(_readout_means(t).items(), key=lambda item: item[1])
        run = t["runs"][0]
        lines.append(f"| {t['method']} | {t['trial']} | {' '.join(t['settings']) or '(shipped)'} | {run['steps_done']} "
                     f"| {run['cpu_seconds'] / 60:.1f} | {run['load_average_before_after']} | {100 * probes[0]:.1f} | "
                     f"{100 * probes[1]:.1f} | {50 * sum(probes):.2f} | {best[0]}: {100 * best[1]:.2f} | "
                     f"`{t['command']}` |")
    (RESULTS / "speech_sweep.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _readout_means(trial: dict[str, Any]) -> dict[str, float]:
    """Mean of the digit and speaker validation probes per readout ("final output", "block k")."""
    by_name: dict[str, list[float]] = {}
    for label in LABELS:
        for row in trial["reports"][label]["rows"]:
            if row["kind"] != "raw":
                readout = row["name"].split(", ")[1].rstrip(")") if ", " in row["name"] else "final output"
                by_name.setdefault(readout, []).append(row["probe"]["mean"])
    return {name: statistics.fmean(values) for name, values in by_name.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--minutes", type=float, default=10.0, help="wall-clock pretraining budget per method")
    parser.add_argument("--cpu-minutes", type=float, default=None,
                        help="CPU-time pretraining budget per method (train.max_cpu_minutes; replaces --minutes; "
                             "the schedule is fitted to it)")
    parser.add_argument("--steps", type=int, default=None, help="override the recipe's step count (wall budgets)")
    parser.add_argument("--seeds", type=int, default=1, help="pretraining seeds (the table's spread is over them)")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="recipe override (a setting under trial, or the one chosen on validation)")
    parser.add_argument("--select-on", choices=("test", "val"), default="test",
                        help="val: score on a stratified 20 %% carve of the training clips and append the trial to "
                             "speech_sweep.json (test is never read)")
    parser.add_argument("--scan-blocks", action="store_true",
                        help="with --select-on val: also score every transformer block's mean-pooled hidden state")
    parser.add_argument("--readout-block", type=int, default=None,
                        help="score block K's mean-pooled hidden state (chosen with --scan-blocks) beside the final "
                             "output, for the trained encoder and its random-init twin")
    parser.add_argument("--trial", default="shipped", help="the trial's name in speech_sweep.json")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--table-only", action="store_true", help="only rewrite speech.md from the JSON files")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)
    sweep_path = RESULTS / "speech_sweep.json"
    if not args.table_only:
        for method in args.methods:
            result = run_method(method, args)
            if args.select_on == "val":
                # Re-read before appending: another trial may have finished meanwhile (two run side by side).
                trials = json.loads(sweep_path.read_text()) if sweep_path.is_file() else []
                sweep_path.write_text(json.dumps([*trials, result], indent=2), encoding="utf-8")
                write_sweep([*trials, result])
            else:
                (RESULTS / f"speech.{method}.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
        if args.select_on == "val":
            return
    markdown = ("# Speech benchmark (FSDD, official 2,700 / 300 split)\n\n"
                "Linear probe: mean ± std over 3 probe seeds, or over pretraining seeds where the pretraining column "
                "names several (each seed's own random-init twin); k-NN: weighted, cosine. Utterance embedding = mean "
                "over valid frames/tokens. Pretraining on a CPU-time budget (`--cpu-minutes`, train.max_cpu_minutes) "
                "with the schedule fitted to it; the column gives steps × batch and CPU-minutes per seed and the "
                "1-minute load average at the end. Settings chosen on a validation carve of the training clips: "
                "[speech_sweep.md](speech_sweep.md). Rows without a budget are older wall-clock runs.\n\n"
                + table() + "\n")
    (RESULTS / "speech.md").write_text(markdown, encoding="utf-8")
    print(markdown)


if __name__ == "__main__":
    main()
