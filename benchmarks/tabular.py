"""UCI Adult: every tabular recipe on a CPU-time budget, settings chosen on a validation carve of the train file,
the official test split scored once. SSL uses the train rows only (labels unused); frozen backbone features are
probed with L2 logistic regression at 1 %, 10 % and 100 % of the train labels (the same label draws for every row),
beside raw-feature logistic regression, gradient-boosted trees and each architecture's random-init twin.

    # 1. selection: 20 % of adult.data held out (stratified, seed 0), the test file never read
    OMNISSL_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/tabular.py sweep --cpu-minutes 1 --seeds 5
    # 2. the chosen settings (from benchmarks/results/tabular_sweep.json), trained on all of adult.data, test once
    OMNISSL_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/tabular.py test --cpu-minutes 3 --seeds 5
    # re-render the Markdown files and the README table from the JSON
    .venv/bin/python benchmarks/tabular.py table

Selection score of a trial = the mean of its 1 %, 10 % and 100 % validation accuracies. The probe's decay grid and
validation share are chosen first (best mean score over the raw row, the random-init rows and every recipe as
shipped), then each recipe's trials are scored with that probe. Everything runs on one CPU thread.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from omnissl_tabular.evaluation import build_tabular_gbdt_baseline

from omnissl.core.config import load_recipe
from omnissl.eval.knn import build_knn
from omnissl.eval.label_efficiency import build_label_efficiency
from omnissl.train.assemble import assemble, random_init_encoders
from omnissl.train.runner import train
from omnissl.workflows.evaluation import evaluate_encoders

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "modalities" / "tabular" / "README.md"
FRACTIONS = (0.01, 0.1, 1.0)
VALIDATION = 0.2  # share of adult.data held out for selection (6,512 of 32,561 rows)
WIDE = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
# Probe candidates: the core default, and a grid reaching stronger L2 (1 % of Adult is ~260-325 labelled rows).
PROBES = {"core default (0..1e-2, 10 % val)": {"weight_decays": [0.0, 1e-4, 1e-3, 1e-2], "val_fraction": 0.1},
          "wide (1e-4..1, 10 % val)": {"weight_decays": WIDE, "val_fraction": 0.1},
          "wide (1e-4..1, 20 % val)": {"weight_decays": WIDE, "val_fraction": 0.2}}
# Trials per recipe: overrides on the shipped YAML ([] = as shipped). One knob at a time around the shipped point.
SEARCH = {
    "scarf": [[], ["encoder.depth=4"], ["augment.global.ops.0.corruption_rate=0.3"], ["train.lr=0.003"]],
    "vime": [[], ["objective.mask_rate=0.5"], ["train.lr=0.003"]],
    "dae": [[], ["objective.noise_rate=0.3"]],
    "mae": [[], ["objective.mask_ratio=0.75"]],
    "simclr": [[], ["augment.global.ops.0.corruption_rate=0.6"]],
}
BUDGET = ["train.max_minutes=null", "train.steps=1000000", "train.checkpoint_every=0", "train.knn_every=0"]


def load(method: str, overrides: list[str]) -> Any:
    return load_recipe(ROOT / "recipes" / "tabular" / f"{method}.yaml", overrides)


def protocols(seeds: int, probe: dict[str, Any], knn: bool) -> list[Any]:
    found = [build_label_efficiency(fractions=list(FRACTIONS), seeds=seeds, min_per_class=2, **probe)]
    return [build_knn(k=[20]), *found] if knn else found


def measure(encoders: dict[str, Any], bundle: Any, recipe: Any, *, seeds: int, probe: dict[str, Any],
            knn: bool = False, raw: bool = False) -> list[dict[str, Any]]:
    """Named encoders (and the raw row) → ``[{"row", "dim", "knn20", "probe": {"1%": {mean, std, per_seed}}}]``."""
    kinds = {n: "random init" if "random init" in n else "ssl" for n in encoders}
    found = evaluate_encoders(encoders, bundle, recipe.eval, device=torch.device("cpu"), dataset_name="adult",
                              include_raw=raw, kinds=kinds, protocols=protocols(seeds, probe, knn))
    out = []
    for row in found.rows:
        curve = row["cells"]["label_efficiency"]["columns"]
        by_k = row["cells"].get("knn", {}).get("details", {}).get("by_k", {})
        out.append({"row": row["name"], "dim": row.get("dim"), "knn20": by_k.get("k-NN k=20"),
                    "probe": {f"{f:.0%}": curve[f"{100 * f:g}% labels"] for f in FRACTIONS}})
    return out


def score(row: dict[str, Any]) -> float:
    """Selection score: mean validation accuracy over the three label fractions."""
    return sum(row["probe"][f"{f:.0%}"]["mean"] for f in FRACTIONS) / len(FRACTIONS)


def fit(method: str, overrides: list[str], cpu_minutes: float) -> tuple[Any, Any, dict[str, Any]]:
    """Train ``method`` with ``overrides`` for ``cpu_minutes`` of this process's CPU time → recipe, assembled, info."""
    recipe = load(method, [*overrides, *BUDGET, f"train.max_cpu_minutes={cpu_minutes}"])
    assembled = assemble(recipe)
    with tempfile.TemporaryDirectory() as run_dir:
        began, cpu_began = time.perf_counter(), time.process_time()
        result = train(assembled, Path(run_dir) / "run")
        info = {"steps": result.steps_done, "train_seconds": round(time.perf_counter() - began, 1),
                "train_cpu_s": round(time.process_time() - cpu_began, 1), "stopped": result.stopped_because,
                "load_average": [round(x, 2) for x in os.getloadavg()]}
    return recipe, assembled, info


def random_twin(recipe: Any, bundle: Any) -> tuple[str, Any]:
    encoder = next(iter(random_init_encoders(recipe, bundle, seed=recipe.seed + 1).values()))
    spec = recipe.encoder.model_dump()
    settings = ", ".join(f"{k}={v}" for k, v in sorted(spec.items()) if k in ("depth", "width", "dim"))
    return f"{recipe.encoder.name} ({settings}), random init", encoder


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def sweep(args: argparse.Namespace) -> None:
    """Every trial on the validation carve; written after each one (a rerun resumes, skipping finished trials)."""
    out = args.results / "tabular_sweep.json"
    data = json.loads(out.read_text(encoding="utf-8")) if out.exists() and args.resume else {"baselines": {}, "trials": []}
    data["meta"] = {"command": f"benchmarks/tabular.py sweep --cpu-minutes {args.cpu_minutes:g} --seeds {args.seeds}",
                    "validation_fraction": VALIDATION, "cpu_minutes": args.cpu_minutes, "seeds": args.seeds,
                    "threads": 1, "torch": torch.__version__, "machine": platform.processor() or platform.machine()}
    val = [f"data.validation_fraction={VALIDATION}", *args.data]
    base = load("scarf", val)
    bundle = assemble(base).bundle
    data["meta"].update(train_rows=len(bundle.train), validation_rows=len(bundle.test))
    for name, probe in PROBES.items():
        if name not in data["baselines"]:
            encoders = dict(random_twin(load(m, val), bundle) for m in ("scarf", "mae"))
            data["baselines"][name] = measure(encoders, bundle, base, seeds=args.seeds, probe=probe, raw=True)
            write_json(out, data)
    done = {(t["method"], tuple(t["overrides"])) for t in data["trials"]}
    shipped = [(m, trials[0]) for m, trials in SEARCH.items()]
    for method, overrides in shipped:  # stage 1: each recipe as shipped, under every probe candidate
        if (method, tuple(overrides)) in done:
            continue
        recipe, assembled, info = fit(method, [*overrides, *val], args.cpu_minutes)
        encoder = next(iter(assembled.encoders.values()))
        by_probe = {n: measure({method: encoder}, assembled.bundle, recipe, seeds=args.seeds, probe=p)[0]
                    for n, p in PROBES.items()}
        data["trials"].append({"method": method, "overrides": overrides, **info, "by_probe": by_probe})
        write_json(out, data)
        print(f"{method} {overrides}: {info} → {[round(score(r), 4) for r in by_probe.values()]}", flush=True)
    data["probe"] = choose_probe(data)
    write_json(out, data)
    probe = data["probe"]["chosen"]
    for method, trials in SEARCH.items():  # stage 2: the other trials under the chosen probe
        for overrides in trials[1:]:
            if (method, tuple(overrides)) in {(t["method"], tuple(t["overrides"])) for t in data["trials"]}:
                continue
            recipe, assembled, info = fit(method, [*overrides, *val], args.cpu_minutes)
            encoder = next(iter(assembled.encoders.values()))
            row = measure({method: encoder}, assembled.bundle, recipe, seeds=args.seeds, probe=PROBES[probe])[0]
            data["trials"].append({"method": method, "overrides": overrides, **info, "by_probe": {probe: row}})
            write_json(out, data)
            print(f"{method} {overrides}: {info} → {score(row):.4f}", flush=True)
    data["chosen"] = {m: max((t for t in data["trials"] if t["method"] == m),
                             key=lambda t: score(t["by_probe"][probe]))["overrides"] for m in SEARCH}
    write_json(out, data)
    render(args.results, readme=None)


def choose_probe(data: dict[str, Any]) -> dict[str, Any]:
    """The probe candidate with the best mean score over the baseline rows and every shipped-recipe trial."""
    means = {}
    for name in PROBES:
        rows = [*data["baselines"][name], *(t["by_probe"][name] for t in data["trials"] if name in t["by_probe"])]
        means[name] = sum(score(r) for r in rows) / len(rows)
    return {"chosen": max(means, key=means.get), "mean_score": means}


def test(args: argparse.Namespace) -> None:
    """The chosen settings, trained on all of adult.data, scored once on adult.test; written after each method."""
    chosen = json.loads((args.results / "tabular_sweep.json").read_text(encoding="utf-8"))
    probe_name = chosen["probe"]["chosen"]
    probe = PROBES[probe_name]
    out = args.results / "tabular.json"
    data = json.loads(out.read_text(encoding="utf-8")) if out.exists() and args.resume else {"rows": []}
    data["meta"] = {"command": f"benchmarks/tabular.py test --cpu-minutes {args.cpu_minutes:g} --seeds {args.seeds}",
                    "cpu_minutes": args.cpu_minutes, "seeds": args.seeds, "probe": probe_name, **probe,
                    "threads": 1, "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
                    "train_rows": 32561, "test_rows": 16281}
    base = load("scarf", args.data)
    bundle = assemble(base).bundle
    if not any(r["method"] == "raw_lr" for r in data["rows"]):
        (raw,) = measure({}, bundle, base, seeds=args.seeds, probe=probe, knn=True, raw=True)
        gbdt = evaluate_encoders({}, bundle, base.eval, device=torch.device("cpu"), dataset_name="adult",
                                 include_raw=False, protocols=[build_tabular_gbdt_baseline(
                                     fractions=list(FRACTIONS), seeds=args.seeds)])
        curve = gbdt.rows[0]["cells"]["label_efficiency"]["columns"]
        data["rows"] += [{**raw, "row": "raw features, logistic regression", "method": "raw_lr"},
                         {"row": "raw features, HistGradientBoosting", "method": "gbdt", "knn20": None, "dim": None,
                          "probe": {f"{f:.0%}": curve[f"{100 * f:g}% labels"] for f in FRACTIONS}}]
        write_json(out, data)
    for method in args.methods:
        if any(r["method"] == method for r in data["rows"]):
            continue
        overrides = chosen["chosen"][method]
        recipe, assembled, info = fit(method, [*overrides, *args.data], args.cpu_minutes)
        twin_name, twin = random_twin(recipe, assembled.bundle)
        encoder = next(iter(assembled.encoders.values()))
        have_twin = any(r["row"] == twin_name for r in data["rows"])
        encoders = {f"{method} ({recipe.encoder.name}, trained)": encoder, **({} if have_twin else {twin_name: twin})}
        found = measure(encoders, assembled.bundle, recipe, seeds=args.seeds, probe=probe, knn=True)
        data["rows"].append({**found[0], "method": method, "twin": twin_name, "overrides": overrides, **info})
        if not have_twin:
            data["rows"].append({**found[1], "method": "random_init"})
        write_json(out, data)
        print(f"{method}: {info} → {found[0]['probe']}", flush=True)
    render(args.results, readme=README if args.results == RESULTS else None)


def cell(row: dict[str, Any], fraction: str) -> str:
    found = row["probe"][fraction]
    return f"{100 * found['mean']:.2f} ± {100 * found['std']:.2f}"


def gain(row: dict[str, Any], reference: dict[str, Any], fraction: str) -> tuple[float, float] | None:
    """Mean and std over label draws (100 %: probe carves) of (row − reference) in points: the draws are shared."""
    mine, theirs = row["probe"][fraction]["per_seed"], reference["probe"][fraction]["per_seed"]
    if row is reference or len(mine) != len(theirs) or len(mine) < 2:
        return None
    gains = [100 * (a - b) for a, b in zip(mine, theirs)]
    mean = sum(gains) / len(gains)
    return mean, (sum((g - mean) ** 2 for g in gains) / (len(gains) - 1)) ** 0.5


def gain_text(found: tuple[float, float] | None) -> str:
    return "—" if found is None else f"{found[0]:+.2f} ± {found[1]:.2f}"


def verdict(row: dict[str, Any], refs: dict[str, dict[str, Any]]) -> str:
    """'yes' when the row beats every reference at 1 % and 100 % by more than the paired spread, else what fails."""
    misses = []
    for name, reference in refs.items():
        for fraction in ("1%", "100%"):
            found = gain(row, reference, fraction)
            if found is not None and found[0] <= found[1]:
                misses.append(f"{'below' if found[0] < 0 else 'within spread of'} {name} at {fraction}")
    return "yes" if not misses else "**no**: " + "; ".join(misses)


def results_table(rows: list[dict[str, Any]]) -> str:
    header = ["features", "settings (chosen on validation)", "dim", "k-NN k=20", "1% labels", "10% labels",
              "100% labels", "1% vs raw LR", "1% vs random init", "100% vs raw LR", "beats both?",
              "SSL steps (CPU-s, load)"]
    raw = next(r for r in rows if r["method"] == "raw_lr")
    by_name = {r["row"]: r for r in rows}
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        twin = by_name.get(row.get("twin", ""))
        ssl = "steps" in row
        refs = {"raw LR": raw, **({"random init": twin} if twin else {})}
        lines.append("| " + " | ".join([
            row["row"], (", ".join(row["overrides"]) or "as shipped") if ssl else "—", str(row.get("dim") or "—"),
            f"{100 * row['knn20']:.2f}" if row.get("knn20") is not None else "—",
            *(cell(row, f"{f:.0%}") for f in FRACTIONS), gain_text(gain(row, raw, "1%")),
            gain_text(gain(row, twin, "1%")) if twin else "—", gain_text(gain(row, raw, "100%")),
            verdict(row, refs) if ssl else "—",
            f"{row['steps']} ({row['train_cpu_s']:.0f}, {row['load_average'][0]:.2f})" if ssl else "—"]) + " |")
    return "\n".join(lines)


def sweep_markdown(data: dict[str, Any]) -> str:
    meta, probe = data["meta"], data.get("probe", {})
    lines = [f"# UCI Adult settings sweep (validation carve, test never read)\n\n`{PREFIX}{meta['command']}`\n",
             (f"SSL on {1 - meta['validation_fraction']:.0%} of adult.data ({meta['train_rows']:,} rows), every probe fitted on "
              f"those rows' labels and scored on the held-out {meta['validation_fraction']:.0%} "
              f"({meta['validation_rows']:,} rows, stratified, "
              f"seed 0); {meta['cpu_minutes']:g} CPU-minute per trial on one thread, {meta['seeds']} label draws. "
              "Score = mean of the 1 % / 10 % / 100 % validation accuracies.\n"),
             "## Probe candidates (mean score over the baseline rows and every recipe as shipped)\n",
             "| probe | mean score | raw LR 1% / 100% |", "|---|---|---|"]
    for name in PROBES:
        raw = next((r for r in data["baselines"].get(name, []) if r["row"] == "raw input"), None)
        mean = probe.get("mean_score", {}).get(name)
        lines.append(f"| {name}{' **(chosen)**' if name == probe.get('chosen') else ''} | "
                     f"{'—' if mean is None else f'{100 * mean:.2f}'} | "
                     f"{'—' if raw is None else cell(raw, '1%') + ' / ' + cell(raw, '100%')} |")
    lines += ["", "## Trials", "", "| recipe | overrides | probe | steps | CPU-s | load | 1% | 10% | 100% | score |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    chosen = data.get("chosen", {})
    for trial in data["trials"]:
        for name, row in trial["by_probe"].items():
            mark = " **(chosen)**" if chosen.get(trial["method"]) == trial["overrides"] and name == probe.get("chosen") else ""
            lines.append(f"| {trial['method']}{mark} | {', '.join(trial['overrides']) or 'as shipped'} | {name} | "
                         f"{trial['steps']} | {trial['train_cpu_s']:.0f} | {trial['load_average'][0]:.2f} | "
                         + " | ".join(cell(row, f"{f:.0%}") for f in FRACTIONS) + f" | {100 * score(row):.2f} |")
    return "\n".join(lines) + "\n"


PREFIX = "OMNISSL_DATA_DIR=../shared/datasets OMP_NUM_THREADS=1 .venv/bin/python "
BEGIN, END = "<!-- tabular-table:begin (benchmarks/tabular.py table) -->", "<!-- tabular-table:end -->"


def results_markdown(data: dict[str, Any]) -> str:
    meta = data["meta"]
    return (f"`{PREFIX}benchmarks/tabular.py sweep --cpu-minutes 1 --seeds {meta['seeds']}` (selection, "
            f"[tabular_sweep.md](tabular_sweep.md))  \n`{PREFIX}{meta['command']}`\n\n"
            f"Official split (32,561 train / 16,281 test), test scored once with the settings chosen on the "
            f"validation carve. SSL ≤ {meta['cpu_minutes']:g} CPU-minutes per recipe on one thread, one SSL seed. "
            f"Probe = L2 logistic regression on frozen backbone features, decay grid {meta['weight_decays']} chosen on "
            f"a {meta['val_fraction']:.0%} part of each labelled subset (probe '{meta['probe']}', chosen on "
            f"validation); mean ± std over {meta['seeds']} label draws shared by every row (100 %: over probe "
            f"validation carves). Gains are paired (same draws), mean ± std in points; 'beats both?' asks for a gain "
            f"above its spread over raw-feature LR and the random-init twin at 1 % and 100 % labels. "
            f"HistGradientBoosting: scikit-learn defaults, native categorical splits.\n\n{results_table(data['rows'])}\n")


def render(results: Path, *, readme: Path | None) -> None:
    """tabular_sweep.md, tabular.md and the README block, all from the JSON files."""
    sweep_json, test_json = results / "tabular_sweep.json", results / "tabular.json"
    if sweep_json.exists():
        (results / "tabular_sweep.md").write_text(sweep_markdown(json.loads(sweep_json.read_text())), encoding="utf-8")
    if not test_json.exists() or not json.loads(test_json.read_text()).get("meta", {}).get("probe"):
        return
    body = results_markdown(json.loads(test_json.read_text(encoding="utf-8")))
    (results / "tabular.md").write_text(f"# UCI Adult: frozen-feature probes at 1 % / 10 % / 100 % labels\n\n{body}",
                                        encoding="utf-8")
    if readme is not None and readme.exists():
        text = readme.read_text(encoding="utf-8")
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        readme.write_text(f"{head}{BEGIN}\n{body}{END}{tail}", encoding="utf-8")

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["sweep", "test", "table"])
    parser.add_argument("--cpu-minutes", type=float, default=3.0, help="SSL budget per run (train.max_cpu_minutes)")
    parser.add_argument("--seeds", type=int, default=5, help="label draws per fraction (100 %%: probe val carves)")
    parser.add_argument("--methods", nargs="+", default=list(SEARCH), help="test stage: the recipes to run")
    parser.add_argument("--resume", action="store_true", help="keep the finished trials / rows of the JSON")
    parser.add_argument("--data", nargs="*", default=[], help="extra data overrides (smoke tests only)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the JSON / Markdown files")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    if args.stage == "table":
        render(args.results, readme=README if args.results == RESULTS else None)
    else:
        {"sweep": sweep, "test": test}[args.stage](args)


if __name__ == "__main__":
    main()
