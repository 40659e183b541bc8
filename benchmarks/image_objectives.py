"""Image objectives benchmark: every ``recipes/image/<method>.yaml`` pretrained for the same CPU budget on the
CIFAR-10 10k subset, then the shared protocol (k-NN top-1 at k=20/200 with the 10k train images as memory, linear
probe mean ± std over seeds) on CIFAR-10 test, beside the raw-pixel and random-init baselines (once per
architecture). The LR/momentum schedules are fitted to the budget: a short timed calibration (outside the budget)
gives the step time, and ``train.steps`` is set so the run ends when the budget does (``train.max_cpu_minutes`` is
also set as a hard cap). ``--validation`` evaluates on a split of the train subset instead of test, for choosing
settings; ``--variant`` runs a recipe variant (e.g. ``--methods dino --variant vit``).

    OMNISSL_DATA_DIR=/work/shared/datasets .venv/bin/python benchmarks/image_objectives.py --minutes 12 --threads 1
    OMNISSL_DATA_DIR=/work/shared/datasets .venv/bin/python benchmarks/image_objectives.py --mae-timing

Writes ``benchmarks/results/image_objectives.{json,md}`` (or ``mae_step_time.json`` for ``--mae-timing``, with ``--override`` for the recipe:
one MAE step at mask ratio 0.75 against the same ViT run on all tokens).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from cpu_budget import step_cpu_seconds  # benchmarks/ is on sys.path: run as a script
from torch.utils.data import Subset

from omnissl.core.config import Recipe, dump_recipe, load_recipe
from omnissl.core.types import DataBundle
from omnissl.data.tensors import training_loader
from omnissl.train.assemble import assemble, random_init_encoders
from omnissl.train.runner import Trainer, read_metrics
from omnissl.workflows.evaluation import evaluate_encoders, legacy_rows

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
METHODS = ["simclr", "moco_v2", "moco_v3", "byol", "simsiam", "barlow_twins", "vicreg", "swav", "dino", "data2vec",
           "mae", "dinov2", "ibot", "simclr_mae", "rotation", "relative_patch", "jigsaw", "colorization"]


def recipe_for(method: str, extra: list[str], variant: str | None = None) -> Recipe:
    return load_recipe(ROOT / "recipes" / "image" / f"{method}.yaml", extra, variant=variant)


def eval_overrides(args: argparse.Namespace) -> list[str]:
    out = [f"eval.probe_seeds={args.probe_seeds}", "eval.knn_k=[20, 200]"]
    if args.eval_train:
        out.append(f"eval.max_train_samples={args.eval_train}")
    if args.eval_test:
        out.append(f"eval.max_test_samples={args.eval_test}")
    return out


def row_json(row: dict[str, Any]) -> dict[str, Any]:
    """An engine row (:func:`omnissl.workflows.evaluation.legacy_rows`) in this benchmark's result shape."""
    return {"knn": row["knn"], "probe_mean": row["probe"]["mean"], "probe_std": row["probe"]["std"], "dim": row["dim"]}


def evaluate(encoders: dict[str, Any], bundle: Any, config: Any, *, device: torch.device, dataset_name: str,
             include_raw: bool = True) -> Any:
    """The engine (omnissl.workflows.evaluation), the same protocol as ``omnissl eval``."""
    kinds = {name: "random init" if "random init" in name else "ssl" for name in encoders}
    return evaluate_encoders(encoders, bundle, config, device=device, dataset_name=dataset_name,
                             include_raw=include_raw, kinds=kinds)



def validation_bundle(bundle: DataBundle) -> DataBundle:
    """For choosing recipe settings without touching CIFAR-10 test: a seeded 80/20 split of the 10k train subset
    (stored sorted by class, hence the shuffle) gives the k-NN memory / probe train set and the queries (seen
    unlabelled during pretraining, never as labels)."""
    order = torch.randperm(len(bundle.train), generator=torch.Generator().manual_seed(0)).tolist()  # type: ignore[arg-type]
    cut = len(order) * 4 // 5
    return replace(bundle, train=Subset(bundle.train, order[:cut]), test=Subset(bundle.train, order[cut:]))


def run_method(method: str, args: argparse.Namespace, baselines: dict[str, Any]) -> dict[str, Any]:
    budget_s = args.minutes * 60
    load_at_start = os.getloadavg()[0]
    base = recipe_for(method, args.override + eval_overrides(args), args.variant)
    step_s = step_cpu_seconds(base)
    steps = max(5, int(budget_s * 0.97 / step_s))
    warmup = min(base.train.warmup_steps, steps // 10)
    overrides = eval_overrides(args) + [
        f"train.steps={steps}", f"train.warmup_steps={warmup}", "train.max_minutes=null",
        f"train.max_cpu_minutes={args.minutes}",
        "train.knn_every=0", "train.checkpoint_every=0", "train.log_every=5", "train.monitor_every=10"]
    recipe = recipe_for(method, args.override + overrides, args.variant)
    run_dir = Path(tempfile.mkdtemp(prefix=f"bench-{method}-"))
    assembled = assemble(recipe)
    result = Trainer(assembled, run_dir / "run").fit()
    metrics = read_metrics(run_dir / "run")
    collapse = {k.split("/", 1)[1]: v for r in metrics for k, v in r.items() if k.startswith("collapse/")}
    losses = [r["loss"] for r in metrics if "loss" in r]
    device = torch.device("cpu")
    towers = assembled.objective.towers
    eval_bundle = validation_bundle(assembled.bundle) if args.validation else assembled.bundle
    report = evaluate({method: towers["main"]}, eval_bundle, recipe.eval, device=device,
                      dataset_name="cifar10", include_raw=False)
    key = json.dumps(recipe.encoder.model_dump() if recipe.encoder else {}, sort_keys=True)
    if key not in baselines:
        random_enc = random_init_encoders(recipe, assembled.bundle, seed=recipe.seed + 1)["main"]
        base_report = evaluate({"random init": random_enc}, eval_bundle, recipe.eval, device=device,
                               dataset_name="cifar10", include_raw="raw" not in baselines)
        for row in legacy_rows(base_report):
            name = "raw" if row["name"] == "raw input" else key
            baselines[name] = {**row_json(row), "encoder": recipe.encoder.model_dump() if row["name"] != "raw input"
                               else "flattened pixels", "test_samples": base_report.test_samples}
    return {"method": method, "variant": args.variant, "load_average_at_start": load_at_start, "encoder": recipe.encoder.model_dump() if recipe.encoder else None,
            "budget_minutes": args.minutes, "calibrated_step_s": step_s, "planned_steps": steps,
            "steps_done": result.steps_done, "train_seconds": result.seconds, "train_cpu_seconds": result.cpu_seconds,
            "images_per_s": result.samples_per_second, "stopped_because": result.stopped_because,
            "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
            "collapse": collapse, **row_json(legacy_rows(report)[0]), "baseline_key": key,
            "train_samples": report.train_samples, "test_samples": report.test_samples,
            "recipe": dump_recipe(recipe)}


def _num(value: float | None, fmt: str) -> str:
    return "–" if value is None or value != value else format(value, fmt)  # NaN/None: the monitor never ran


def _encoder_label(spec: dict[str, Any]) -> str:
    extra = f" w{spec['width']}" if "width" in spec else ""
    extra += f", {spec['pool']} pool" if "pool" in spec else ""
    return f"{spec['name']}{extra}"


def markdown(results: list[dict[str, Any]], baselines: dict[str, Any], args: argparse.Namespace,
             command: str) -> str:
    lines = [f"# Image objectives on CIFAR-10 (10k-image train subset), {args.minutes} CPU-minute(s) per method",
             "", "Commands (one process per method at 1 thread; the budget is CPU time, so runs that shared the machine — see the load column — got the same compute, only later; the last line merges their tables):", "", "```",
             *(f"OMNISSL_DATA_DIR=/work/shared/datasets .venv/bin/python {part}" for part in command.split(" ; ")),
             "```", "",
             f"Machine: {platform.processor() or platform.machine()}, torch threads {args.threads}; "
             f"k-NN memory/probe train = {results[0]['train_samples'] if results else '?'} train images, queries = "
             f"{results[0]['test_samples'] if results else '?'} test images.", "",
             "| method | encoder | steps | train CPU s | images/s | k-NN@20 | k-NN@200 | linear probe (mean ± std) | emb. std (ideal) | eff. rank | load at start |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        c = r["collapse"]
        std = f"{_num(c.get('embedding_std'), '.4f')} ({_num(c.get('embedding_std_ideal'), '.4f')})"
        label = r["method"] + (f" (--variant {r['variant']})" if r.get("variant") else "")
        lines.append(f"| {label} | {_encoder_label(r['encoder'])} | {r['steps_done']} | {_num(r.get('train_cpu_seconds'), '.0f')} | {r['images_per_s']:.0f} | "
                     f"{100 * r['knn']['k=20']:.2f} | {100 * r['knn']['k=200']:.2f} | "
                     f"{100 * r['probe_mean']:.2f} ± {100 * r['probe_std']:.2f} | {std} | "
                     f"{_num(c.get('effective_rank'), '.1f')} | {_num(r.get('load_average_at_start'), '.1f')} |")
    for key, b in baselines.items():
        name = "raw pixels" if key == "raw" else f"random init ({_encoder_label(b['encoder'])})"
        lines.append(f"| {name} | – | 0 | – | – | {100 * b['knn']['k=20']:.2f} | {100 * b['knn']['k=200']:.2f} | "
                     f"{100 * b['probe_mean']:.2f} ± {100 * b['probe_std']:.2f} | – | – | – |")
    if getattr(args, "validation", False):
        lines += ["", "**Validation split, not test:** a seeded 80/20 shuffle of the 10k train subset gives the k-NN "
                  "memory / probe train set (8k) and the queries (2k). Used to choose recipe settings."]
    lines += ["", f"Budget: {args.minutes} CPU-minutes of pretraining per method, counted as this process's CPU time "
              "(`time.process_time`, all threads summed) and enforced by `train.max_cpu_minutes`, so a run that shares "
              "the machine gets the same compute, only later. The LR schedule is fitted to the budget by a short timed "
              "calibration (outside the budget); where it over-estimates the step time, a run ends before its budget "
              "is spent (train CPU s below the budget). Evaluation is outside the budget. Collapse-monitor values are "
              "the last ones logged (every 10 steps)."]
    return "\n".join(lines) + "\n"


def mae_timing(args: argparse.Namespace) -> None:
    """Median step time (forward + backward + AdamW) of MAE at ratio 0.75 vs the same ViT on all tokens."""
    recipe = recipe_for("mae", args.override)
    assembled = assemble(recipe)
    mae, policy = assembled.objective, assembled.policies["main"]
    vit = mae.encoder
    x = next(iter(training_loader(assembled.bundle.train, assembled.bundle, batch_size=recipe.train.batch_size,
                                  seed=0, start_batch=0, num_workers=0)))["x"]
    views = policy(x)

    def full_step() -> torch.Tensor:  # every token through the encoder, plus the same decoder on all positions
        out = vit(views.global_views[0])
        return out.tokens.float().pow(2).mean() + out.pooled.float().pow(2).mean()

    def timed(fn: Any) -> list[float]:
        optimizer = torch.optim.AdamW([p for p in mae.parameters() if p.requires_grad], lr=1e-6)
        times = []
        for _ in range(args.timing_steps + 1):
            tick = time.perf_counter()
            loss = fn()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            times.append(time.perf_counter() - tick)
        return times[1:]

    masked = timed(lambda: mae(views).loss)
    encoder_all = timed(full_step)
    mae.mask_ratio = 0.0
    mae_all = timed(lambda: mae(views).loss)
    result = {"batch_size": recipe.train.batch_size, "encoder": recipe.encoder.model_dump() if recipe.encoder else None,
              "objective": recipe.objective.model_dump(), "tokens": int(vit.num_patches), "threads": args.threads, "steps": args.timing_steps,
              "mae_ratio_0.75_step_s": statistics.median(masked),
              "vit_all_tokens_step_s": statistics.median(encoder_all),
              "mae_ratio_0_step_s": statistics.median(mae_all),
              "ratio_vs_vit_all_tokens": statistics.median(masked) / statistics.median(encoder_all),
              "ratio_vs_mae_all_tokens": statistics.median(masked) / statistics.median(mae_all),
              "raw_times": {"mae_0.75": masked, "vit_all": encoder_all, "mae_0": mae_all},
              "command": " ".join(sys.argv)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "raw_times"}, indent=2))


def merge(args: argparse.Namespace) -> None:
    """One table from several result files, in METHODS order; every part must share the budget and threads."""
    parts = [json.loads((RESULTS / f"{stem}.json").read_text(encoding="utf-8")) for stem in args.merge]
    settings = {(p["minutes"], p["threads"]) for p in parts}
    if len(settings) != 1:
        raise SystemExit(f"--merge: the parts differ in (minutes, threads): {sorted(settings)}")
    results = sorted((r for p in parts for r in p["results"]), key=lambda r: METHODS.index(r["method"]))
    baselines: dict[str, Any] = {}
    for p in parts:
        for key, row in p["baselines"].items():
            baselines.setdefault(key, row)
    args.minutes, args.threads = settings.pop()
    command = " ; ".join(p["command"] for p in parts) + f" ; benchmarks/image_objectives.py --merge {' '.join(args.merge)} --name {args.name}"
    payload = {"minutes": args.minutes, "threads": args.threads,
               "validation": any(p.get("validation", False) for p in parts), "command": command, "results": results,
               "baselines": baselines}
    (RESULTS / f"{args.name}.json").write_text(json.dumps(payload, indent=2), encoding="utf-8")
    (RESULTS / f"{args.name}.md").write_text(markdown(results, baselines, args, command), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=12.0,
                        help="pretraining budget per method in CPU minutes (process CPU time, all threads summed)")
    parser.add_argument("--override", nargs="*", default=[], help="recipe overrides (for every method)")
    parser.add_argument("--methods", nargs="*", default=METHODS)
    parser.add_argument("--variant", default=None, help="a recipe variant (e.g. dino's 'vit'), for every method")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--probe-seeds", type=int, default=3)
    parser.add_argument("--eval-train", type=int, default=None, help="limit the k-NN memory / probe train set")
    parser.add_argument("--eval-test", type=int, default=None, help="limit the test queries")
    parser.add_argument("--name", default=None, help="output file stem under benchmarks/results "
                        "(default image_objectives, or mae_step_time with --mae-timing)")
    parser.add_argument("--mae-timing", action="store_true", help="only time MAE (ratio 0.75) vs all tokens")
    parser.add_argument("--timing-steps", type=int, default=5)
    parser.add_argument("--rewrite-md", action="store_true", help="only rewrite the Markdown from the JSON")
    parser.add_argument("--validation", action="store_true", help="evaluate on a validation split of the train "
                        "subset (8k memory / 2k queries) instead of test: for choosing recipe settings")
    parser.add_argument("--merge", nargs="*", default=None, metavar="STEM",
                        help="combine the JSON of runs made in parallel (e.g. one method per process) into --name")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.name = args.name or ("mae_step_time" if args.mae_timing else "image_objectives")
    if args.mae_timing:
        mae_timing(args)
        return
    if args.merge:
        merge(args)
        return
    if args.rewrite_md:  # regenerate the Markdown table from the JSON of an earlier run
        payload = json.loads((RESULTS / f"{args.name}.json").read_text(encoding="utf-8"))
        args.minutes = payload["minutes"]
        (RESULTS / f"{args.name}.md").write_text(markdown(payload["results"], payload["baselines"], args,
                                                          payload["command"]), encoding="utf-8")
        return
    results: list[dict[str, Any]] = []
    baselines: dict[str, Any] = {}
    RESULTS.mkdir(parents=True, exist_ok=True)
    for method in args.methods:
        began = time.perf_counter()
        results.append(run_method(method, args, baselines))
        r = results[-1]
        print(f"{method}: {r['steps_done']} steps, k-NN@200 {100 * r['knn']['k=200']:.2f}, probe "
              f"{100 * r['probe_mean']:.2f} ({time.perf_counter() - began:.0f}s incl. eval)", flush=True)
        payload = {"minutes": args.minutes, "threads": args.threads, "validation": args.validation, "command": " ".join(sys.argv),
                   "results": results, "baselines": baselines}
        (RESULTS / f"{args.name}.json").write_text(json.dumps(payload, indent=2), encoding="utf-8")
        (RESULTS / f"{args.name}.md").write_text(markdown(results, baselines, args, payload["command"]),
                                                 encoding="utf-8")


if __name__ == "__main__":
    main()
