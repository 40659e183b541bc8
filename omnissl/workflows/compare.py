"""``omnissl compare``: the decision table — several encoders on one labelled dataset, one protocol.

Rows: raw input features, random init (per architecture), one or more SSL run directories, and public pretrained
backbones (an ``omnissl export`` folder, a local HF model directory, or any registered encoder as a YAML mapping).
Columns: weighted k-NN, linear probe mean ± std over seeds (the shared protocol of :mod:`omnissl.eval.protocol`),
fine-tuning (last N blocks + head; full with a lower encoder LR — :mod:`omnissl.eval.finetune`), and a
label-efficiency curve (probe accuracy at e.g. 1 %, 10 %, 100 % of the training labels, class-stratified, a fresh
subset per seed). Every row sees the same train/test samples. The table ends with a verdict derived from it.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from omnissl.core.config import Component, Recipe, load_recipe, load_yaml_text
from omnissl.core.errors import ConfigError
from omnissl.eval.features import extract_features, limit, raw_features
from omnissl.eval.finetune import FinetuneConfig, finetune
from omnissl.eval.linear_probe import linear_probe
from omnissl.eval.protocol import measure
from omnissl.eval.summary import score
from omnissl.core.types import Encoder


@dataclass
class Candidate:
    name: str
    kind: str  # "raw" | "random init" | "ssl" | "public"
    encoder: Encoder | None


@dataclass
class CompareSettings:
    fractions: list[float] = field(default_factory=lambda: [0.01, 0.1, 1.0])
    finetune_modes: list[str] = field(default_factory=lambda: ["last_blocks", "full"])
    finetune: dict[str, Any] = field(default_factory=dict)  # FinetuneConfig fields shared by the modes
    finetune_kinds: tuple[str, ...] = ("random init", "ssl", "public")


def stratified_subset(labels: Tensor, fraction: float, *, seed: int) -> Tensor:
    """Indices of ``fraction`` of the samples, drawn per class (at least one per class present)."""
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for label in labels.unique():
        members = (labels == label).nonzero().flatten()
        take = max(1, round(fraction * len(members)))
        chosen.append(members[torch.randperm(len(members), generator=generator)[:take]])
    return torch.cat(chosen).sort().values


def label_efficiency(train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor], eval_config: Any,
                     fractions: list[float], num_classes: int | None, full_probe: dict[str, Any]) -> dict[str, Any]:
    """``{fraction: {"mean", "std", "labels"}}``; 100 % reuses the main probe (same seeds, same protocol)."""
    curve: dict[str, Any] = {}
    for fraction in fractions:
        if fraction >= 1.0:
            curve[str(fraction)] = {"mean": full_probe["mean"], "std": full_probe["std"], "labels": len(train[1]),
                                    "seeds": len(full_probe["per_seed"])}
            continue
        scores, size = [], 0
        for seed in range(eval_config.probe_seeds):
            index = stratified_subset(train[1], fraction, seed=seed)
            size = len(index)
            result = linear_probe(train[0][index], train[1][index], test[0], test[1], seeds=1,
                                  max_iter=eval_config.probe_max_iter, weight_decays=eval_config.probe_weight_decays,
                                  val_fraction=eval_config.val_fraction, num_classes=num_classes)
            scores.append(result.mean)
        curve[str(fraction)] = {"mean": statistics.fmean(scores),
                                "std": statistics.stdev(scores) if len(scores) > 1 else 0.0, "labels": size,
                                "seeds": len(scores)}
    return curve


def run_compare(recipe: Recipe, bundle: Any, candidates: list[Candidate], settings: CompareSettings, *,
                device: torch.device, log: Any = print) -> dict[str, Any]:
    """Measure every candidate on the same samples; returns the JSON-able table (rows + verdict)."""
    if bundle.test is None:
        raise ConfigError(f"compare: dataset '{recipe.data.name}' has no test split")
    config = recipe.eval
    train_set = limit(bundle.train, config.max_train_samples, seed=3)
    test_set = limit(bundle.test, config.max_test_samples, seed=4)
    rows = []
    for candidate in candidates:
        log(f"compare: {candidate.name} ...")
        if candidate.encoder is None:
            train = raw_features(train_set, bundle, batch_size=config.batch_size)
            test = raw_features(test_set, bundle, batch_size=config.batch_size)
        else:
            candidate.encoder.to(device)
            train = extract_features(candidate.encoder, train_set, bundle, device=device, batch_size=config.batch_size)
            test = extract_features(candidate.encoder, test_set, bundle, device=device, batch_size=config.batch_size)
        row = measure(candidate.name, train, test, config, bundle.num_classes).__dict__
        row["kind"] = candidate.kind
        row["label_efficiency"] = label_efficiency(train, test, config, settings.fractions, bundle.num_classes,
                                                   row["probe"])
        row["finetune"] = {}
        if candidate.encoder is not None and candidate.kind in settings.finetune_kinds:
            for mode in settings.finetune_modes:
                ft = FinetuneConfig(**{**settings.finetune, "mode": mode})
                row["finetune"][mode] = finetune(candidate.encoder, train_set, test_set, bundle, ft, device=device)
        rows.append(row)
    result = {"dataset": recipe.data.name, "train_samples": len(train_set), "test_samples": len(test_set),
              "probe_seeds": config.probe_seeds, "fractions": settings.fractions,
              "finetune": {"modes": settings.finetune_modes, **FinetuneConfig(**settings.finetune).model_dump()},
              "rows": rows}
    result["verdict"] = verdict(rows)
    return result


def _score(row: dict[str, Any]) -> tuple[float, float]:
    return row["probe"]["mean"], row["probe"]["std"]


def verdict(rows: list[dict[str, Any]], *, margin: float = 0.01) -> str:
    """One line from the table's numbers: the linear probe decides (mean ± std over seeds); a gap smaller than
    ``margin`` (1 point) or than the larger spread counts as a tie; fine-tuning and 1 %-label results are cited."""
    best = {kind: max((r for r in rows if r["kind"] == kind), key=lambda r: r["probe"]["mean"], default=None)
            for kind in ("raw", "random init", "ssl", "public")}
    baselines = [r for r in (best["raw"], best["random init"]) if r is not None]
    base = max(baselines, key=lambda r: r["probe"]["mean"], default=None)
    ssl, public = best["ssl"], best["public"]
    parts = []

    def gap(a: dict[str, Any], b: dict[str, Any]) -> tuple[float, float]:
        return 100 * (a["probe"]["mean"] - b["probe"]["mean"]), 100 * max(a["probe"]["std"], b["probe"]["std"], margin)

    if ssl is not None and public is not None:
        d, tol = gap(public, ssl)
        if d >= -tol:
            where = f"within {abs(d):.1f} points of" if abs(d) <= tol else f"{d:.1f} points above"
            parts.append(f"public backbone '{public['name']}' is {where} the best SSL run '{ssl['name']}' "
                         f"on the linear probe "
                         f"({100 * public['probe']['mean']:.1f} vs {100 * ssl['probe']['mean']:.1f}): prefer it")
        else:
            parts.append(f"the SSL run '{ssl['name']}' beats the public backbone '{public['name']}' by {-d:.1f} "
                         f"points on the linear probe ({100 * ssl['probe']['mean']:.1f} vs "
                         f"{100 * public['probe']['mean']:.1f}, spread ≤ {tol:.1f}): prefer the SSL run")
    winner = public if ssl is None else ssl if public is None else None
    if winner is not None and base is not None:
        d, tol = gap(winner, base)
        if d > tol:
            parts.append(f"'{winner['name']}' beats the best baseline '{base['name']}' by {d:.1f} points "
                         f"on the linear probe: use it")
        else:
            parts.append(f"'{winner['name']}' does not beat the baseline '{base['name']}' beyond the spread "
                         f"({d:+.1f} points, tolerance {tol:.1f}): train longer or check the recipe before using it")
    if not parts:
        parts.append("no SSL run or public backbone in the table: nothing to decide")
    low = min((float(f) for r in rows for f in r.get("label_efficiency", {})), default=None)
    if low is not None and low < 1.0:
        key = next(k for k in rows[0]["label_efficiency"] if float(k) == low)
        top = max(rows, key=lambda r: r["label_efficiency"][key]["mean"])
        parts.append(f"with {100 * low:g}% of the labels the best is '{top['name']}' "
                     f"({100 * top['label_efficiency'][key]['mean']:.1f})")
    tuned = [(m, r) for r in rows for m in r.get("finetune", {})]
    if tuned:
        mode, top = max(tuned, key=lambda mr: mr[1]["finetune"][mr[0]]["mean"])
        parts.append(f"best fine-tuned: '{top['name']}' ({mode}, {100 * top['finetune'][mode]['mean']:.1f})")
    return "; ".join(parts) + "."


def markdown_table(result: dict[str, Any]) -> str:
    rows = result["rows"]
    knn_keys = list(rows[0]["knn"]) if rows else []
    fractions = [str(f) for f in result["fractions"] if float(f) < 1.0]
    modes = result["finetune"]["modes"]
    header = ["encoder", "kind", "dim", *[f"k-NN {k}" for k in knn_keys], "linear probe",
              *[f"probe @ {100 * float(f):g}% labels" for f in fractions],
              *[f"fine-tune {m}" for m in modes]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["name"], row["kind"], str(row["feature_dim"]), *[f"{100 * row['knn'][k]:.2f}" for k in knn_keys],
                 score(result=row["probe"])]
        cells += [score(result=row["label_efficiency"][f]) for f in fractions]
        for m in modes:
            ft = row["finetune"].get(m)
            cells.append(score(result=ft) if ft else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\n**Verdict:** {result['verdict']}\n"


def parse_public(spec: str, context: dict[str, Any]) -> tuple[str, Encoder, Component | None]:
    """``[LABEL=]SPEC`` → (label, encoder, component or None). SPEC: an ``omnissl export`` folder, a local HF
    model folder (built with the registered ``hf_local`` encoder), or a YAML mapping ``{name: ..., ...}``."""
    from omnissl.core.instantiate import build_component
    from omnissl.workflows.export import CONFIG_NAME, load_exported
    from omnissl.core.registry import ENCODERS

    label, _, body = spec.partition("=") if "=" in spec.split("{")[0] else ("", "", spec)
    body = body.strip()
    if body.startswith("{"):
        raw = load_yaml_text(body, source=f"--public {spec}")
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not all(isinstance(k, str) for k in raw):
            raise ConfigError(f"--public {spec}: a mapping needs a 'name' key (a registered encoder) and text keys")
        component = Component(**raw)
    elif (Path(body) / CONFIG_NAME).is_file():
        return label or f"public: {Path(body).name}", load_exported(body), None
    elif (Path(body) / "config.json").is_file() or body.startswith("package:"):
        if "hf_local" not in ENCODERS.names():
            raise ConfigError(f"--public {body}: an HF model folder needs the 'hf_local' encoder (text plugin)")
        component = Component(name="hf_local", path=body)
    else:
        raise ConfigError(f"--public {spec}: not an export folder ({CONFIG_NAME}), not an HF model folder "
                          f"(config.json), and not a YAML mapping {{name: ENCODER, ...}}")
    encoder = build_component(ENCODERS, component, "--public", context)
    return label or f"public: {component.params.get('path', component.name)}", encoder, component


def build_candidates(runs: list[Path], publics: list[str], *, recipe_path: Path | None,
                     overrides: list[str], data_root: str | Path | None) -> tuple[Recipe, Any, list[Candidate]]:
    """The dataset comes from ``recipe_path`` or the first run's ``recipe.yaml``; every run must use it too."""
    from omnissl.train.assemble import build_data, random_init_encoders
    from omnissl.workflows.session import load_trained

    if recipe_path is None and not runs:
        raise ConfigError("compare: give at least one run directory or --recipe (which names the dataset)")
    source = recipe_path or runs[0] / "recipe.yaml"
    recipe = load_recipe(source, overrides)
    if recipe.is_paired:
        raise ConfigError(f"compare: {source} is a paired recipe; compare works on one labelled modality")
    bundle = build_data(recipe, root=data_root)
    candidates: list[Candidate] = []
    if bundle.raw_features is not None and "raw" in recipe.eval.baselines:
        candidates.append(Candidate("raw input", "raw", None))
    seen_arch: set[str] = set()
    for run in runs:
        run_recipe = load_recipe(run / "recipe.yaml")
        if run_recipe.data.model_dump() != recipe.data.model_dump() and recipe_path is not None:
            # Pretrain on one corpus, judge on a labelled task: allowed when the table's recipe says so.
            print(f"compare: note: {run} was pretrained on {run_recipe.data.model_dump()}; its encoder is measured "
                  f"on {recipe.data.model_dump()} (from {source})")
        elif run_recipe.data.model_dump() != recipe.data.model_dump():
            raise ConfigError(f"compare: {run} was trained on data {run_recipe.data.model_dump()}, but the table "
                              f"uses {recipe.data.model_dump()} (from {source}); compare runs on the same data")
        encoder = load_trained(run, root=data_root).objective.towers["main"]
        arch = json.dumps(run_recipe.encoder.model_dump() if run_recipe.encoder else None, sort_keys=True)
        if arch not in seen_arch and "random_init" in recipe.eval.baselines:
            seen_arch.add(arch)
            assert run_recipe.encoder is not None
            candidates.append(Candidate(f"random init ({run_recipe.encoder.name})", "random init",
                                        random_init_encoders(run_recipe, bundle, seed=recipe.seed + 1)["main"]))
        candidates.append(Candidate(f"SSL: {run_recipe.objective.name} ({run.name})", "ssl", encoder))
    for spec in publics:
        label, encoder, component = parse_public(spec, dict(bundle.input_spec))
        if component is not None and not seen_arch:
            # A random-init twin of the public architecture when no SSL run supplied one.
            from omnissl.core.instantiate import build_component
            from omnissl.core.registry import ENCODERS

            if "pretrained" in ENCODERS.get(component.name).signature.parameters:
                twin = Component(name=component.name, **{**component.params, "pretrained": False})
                torch.manual_seed(recipe.seed + 1)
                candidates.append(Candidate(f"random init ({component.name})", "random init",
                                            build_component(ENCODERS, twin, "--public", dict(bundle.input_spec))))
                seen_arch.add(component.name)
        candidates.append(Candidate(label, "public", encoder))
    return recipe, bundle, candidates
