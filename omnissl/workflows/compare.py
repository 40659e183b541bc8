"""``omnissl compare``: the decision table — the evaluation of :mod:`omnissl.workflows.evaluation` with more rows,
plus a verdict.

Rows: raw input, random init (per architecture), one or more SSL run directories, public pretrained backbones (an
``omnissl export`` folder, a local HF model directory, or any registered encoder as a YAML mapping), and the strong
baselines the recipe's protocols add. Columns: the recipe's ``eval.protocols``, plus label efficiency at the asked
fractions and fine-tuning in each asked mode. Every row sees the same subsets (one engine). The verdict is derived
from the table: the linear probe ranks rows (else the recipe's first protocol), and a flag says when k-NN ranks
them differently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from omnissl.core.config import Component, Recipe, load_recipe, load_yaml_text
from omnissl.core.errors import ConfigError
from omnissl.core.types import Encoder
from omnissl.eval.engine import Row, build_protocols, run_table
from omnissl.eval.finetune import build_finetune
from omnissl.eval.label_efficiency import build_label_efficiency, fraction_label
from omnissl.eval.table import ResultTable


@dataclass
class CompareSettings:
    fractions: list[float] = field(default_factory=lambda: [0.01, 0.1, 1.0])
    finetune_modes: list[str] = field(default_factory=lambda: ["last_blocks", "full"])
    finetune: dict[str, Any] = field(default_factory=dict)  # FinetuneConfig fields shared by the modes


def compare_protocols(recipe: Recipe, bundle: Any, settings: CompareSettings) -> list[Any]:
    """The recipe's protocols, then label efficiency (unless the recipe has it) and one fine-tuning per mode."""
    protocols = build_protocols(recipe.eval, bundle)
    names = {p.name for p in protocols}
    if "label_efficiency" not in names and settings.fractions:
        e = recipe.eval
        protocols.append(build_label_efficiency(fractions=settings.fractions, seeds=e.probe_seeds,
                                                max_iter=e.probe_max_iter, weight_decays=list(e.probe_weight_decays),
                                                val_fraction=e.val_fraction))
    for mode in settings.finetune_modes:
        tuned = dict(settings.finetune)
        if "seeds" in tuned:
            tuned["finetune_seeds"] = tuned.pop("seeds")
        protocol = build_finetune(mode=mode, **tuned)  # type: ignore[arg-type]
        protocol.name = f"finetune {mode}"
        protocols.append(protocol)
    return protocols


def run_compare(recipe: Recipe, assembled: Any, rows: list[Row], settings: CompareSettings, *,
                device: torch.device, run_root: Path | None = None) -> dict[str, Any]:
    """Measure every row on the same subsets; the JSON-able table with its verdict."""
    from omnissl.workflows.baseline_cache import BaselineCache, cache_root
    from omnissl.workflows.evaluation import cache_scope, make_context

    ctx = make_context(assembled, device)
    protocols = compare_protocols(recipe, assembled.bundle, settings)
    cache = BaselineCache(cache_root(run_root)) if run_root is not None else None
    scope = cache_scope(assembled, ctx) if cache is not None else None
    table = run_table(rows, protocols, ctx, tower="main", cache=cache, scope=scope)
    table.verdict = verdict(table.rows, protocols=table.protocols)
    result = table.to_json()
    result.update({"probe_seeds": recipe.eval.probe_seeds, "fractions": settings.fractions,
                   "finetune": {"modes": settings.finetune_modes, **settings.finetune}})
    return result


def _score(row: dict[str, Any], protocol: str) -> dict[str, Any] | None:
    found = row.get("cells", {}).get(protocol)
    return found.get("score") if found else None


def ranking_protocol(protocols: list[str]) -> str:
    per_row = [p for p in protocols if p != "knn" and not p.startswith("finetune") and p != "label_efficiency"]
    return "linear_probe" if "linear_probe" in protocols else (per_row or protocols)[0]


def disagreement(rows: list[dict[str, Any]], first: str, second: str) -> str | None:
    """A sentence when ``first`` and ``second`` order some pair of rows oppositely (both scored)."""
    both = [r for r in rows if _score(r, first) and _score(r, second)]
    for i, a in enumerate(both):
        for b in both[i + 1:]:
            d1 = _score(a, first)["mean"] - _score(b, first)["mean"]  # type: ignore[index]
            d2 = _score(a, second)["mean"] - _score(b, second)["mean"]  # type: ignore[index]
            if d1 * d2 < 0:
                hi1, hi2 = (a, b) if d1 > 0 else (b, a), (a, b) if d2 > 0 else (b, a)
                return (f"note: {first} and {second} rank the rows differently ({first}: '{hi1[0]['name']}' > "
                        f"'{hi1[1]['name']}'; {second}: '{hi2[0]['name']}' > '{hi2[1]['name']}')")
    return None


def verdict(rows: list[dict[str, Any]], *, protocols: list[str] | None = None, margin: float = 0.01) -> str:
    """One line from the table's numbers: the ranking protocol decides (mean ± std over seeds); a gap smaller than
    ``margin`` (1 point) or than the larger spread counts as a tie; the strong baselines count as baselines;
    label efficiency, fine-tuning and a k-NN/probe ranking disagreement are cited."""
    protocols = protocols or sorted({p for r in rows for p in r.get("cells", {})})
    rank = ranking_protocol(protocols)
    scored = [r for r in rows if _score(r, rank)]

    def best(*kinds: str) -> dict[str, Any] | None:
        return max((r for r in scored if r["kind"] in kinds), key=lambda r: _score(r, rank)["mean"], default=None)

    base, ssl, public = best("raw", "random init", "baseline"), best("ssl"), best("public")
    parts = []

    def gap(a: dict[str, Any], b: dict[str, Any]) -> tuple[float, float]:
        sa, sb = _score(a, rank), _score(b, rank)
        assert sa is not None and sb is not None
        return 100 * (sa["mean"] - sb["mean"]), 100 * max(sa.get("std") or 0.0, sb.get("std") or 0.0, margin)

    what = "the linear probe" if rank == "linear_probe" else rank
    if ssl is not None and public is not None:
        d, tol = gap(public, ssl)
        pm, sm = 100 * _score(public, rank)["mean"], 100 * _score(ssl, rank)["mean"]  # type: ignore[index]
        if d >= -tol:
            where = f"within {abs(d):.1f} points of" if abs(d) <= tol else f"{d:.1f} points above"
            parts.append(f"public backbone '{public['name']}' is {where} the best SSL run '{ssl['name']}' "
                         f"on {what} ({pm:.1f} vs {sm:.1f}): prefer it")
        else:
            parts.append(f"the SSL run '{ssl['name']}' beats the public backbone '{public['name']}' by {-d:.1f} "
                         f"points on {what} ({sm:.1f} vs {pm:.1f}, spread ≤ {tol:.1f}): prefer the SSL run")
    winner = public if ssl is None else ssl if public is None else None
    if winner is not None and base is not None:
        d, tol = gap(winner, base)
        if d > tol:
            parts.append(f"'{winner['name']}' beats the best baseline '{base['name']}' by {d:.1f} points "
                         f"on {what}: use it")
        else:
            parts.append(f"'{winner['name']}' does not beat the baseline '{base['name']}' beyond the spread "
                         f"({d:+.1f} points, tolerance {tol:.1f}): train longer or check the recipe before using it")
    if not parts:
        parts.append("no SSL run or public backbone in the table: nothing to decide")
    curves = [r for r in rows if r.get("cells", {}).get("label_efficiency")]
    if curves:
        low = min(float(k.split("%")[0]) for r in curves for k in r["cells"]["label_efficiency"]["columns"])
        key = fraction_label(low / 100)
        have = [r for r in curves if key in r["cells"]["label_efficiency"]["columns"]]
        if low < 100 and have:
            top = max(have, key=lambda r: r["cells"]["label_efficiency"]["columns"][key]["mean"])
            parts.append(f"with {low:g}% of the labels the best is '{top['name']}' "
                         f"({100 * top['cells']['label_efficiency']['columns'][key]['mean']:.1f})")
    tuned = [(p, r) for r in rows for p in r.get("cells", {}) if p.startswith("finetune")]
    if tuned:
        mode, top = max(tuned, key=lambda pr: pr[1]["cells"][pr[0]]["score"]["mean"])
        parts.append(f"best fine-tuned: '{top['name']}' ({mode.removeprefix('finetune ')}, "
                     f"{100 * top['cells'][mode]['score']['mean']:.1f})")
    if rank != "knn" and "knn" in protocols:
        flag = disagreement(rows, "knn", rank)
        if flag:
            parts.append(flag)
    return "; ".join(parts) + "."


def markdown_table(result: dict[str, Any]) -> str:
    """The compare result (``compare.json``) as Markdown, through the one table renderer."""
    return ResultTable.from_json(result).table() + "\n"


def parse_public(spec: str, context: dict[str, Any]) -> tuple[str, Encoder, Component | None]:
    """``[LABEL=]SPEC`` → (label, encoder, component or None), the single entry point for public backbones.
    SPEC: an ``omnissl export`` folder, a local model folder (``config.json``: built by the first registered encoder
    whose ``example_params``/signature takes a ``path`` and accepts the folder, ``hf_local`` first), or a YAML
    mapping ``{name: ENCODER, ...}`` naming any registered encoder."""
    from omnissl.core.instantiate import build_component
    from omnissl.core.registry import ENCODERS
    from omnissl.workflows.export import CONFIG_NAME, load_exported

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
        takers = [n for n in ENCODERS.names() if "path" in ENCODERS.get(n).signature.parameters]
        if not takers:
            raise ConfigError(f"--public {body}: a model folder needs an encoder with a 'path' parameter "
                              f"(e.g. 'hf_local' from the text plugin); none is registered")
        component = Component(name="hf_local" if "hf_local" in takers else takers[0], path=body)
    else:
        raise ConfigError(f"--public {spec}: not an export folder ({CONFIG_NAME}), not a model folder "
                          f"(config.json), and not a YAML mapping {{name: ENCODER, ...}}")
    encoder = build_component(ENCODERS, component, "--public", context)
    return label or f"public: {component.params.get('path', component.name)}", encoder, component


def build_candidates(runs: list[Path], publics: list[str], *, recipe_path: Path | None,
                     overrides: list[str], data_root: str | Path | None) -> tuple[Recipe, Any, list[Row]]:
    """The table's recipe (dataset + protocols; from ``recipe_path`` or the first run) assembled, and its rows:
    raw input, one random init per architecture, each run's trained encoder, each public backbone."""
    from omnissl.core.registry import ENCODERS
    from omnissl.train.assemble import assemble, random_init_encoders
    from omnissl.workflows.session import load_trained

    if recipe_path is None and not runs:
        raise ConfigError("compare: give at least one run directory or --recipe (which names the dataset)")
    source = recipe_path or runs[0] / "recipe.yaml"
    recipe = load_recipe(source, overrides)
    if len(recipe.towers) != 1:
        raise ConfigError(f"compare: {source} has {len(recipe.towers)} towers; compare works on one labelled "
                          f"modality (its paired protocols are in `omnissl eval`)")
    assembled = assemble(recipe, root=data_root)
    bundle = assembled.bundle
    rows: list[Row] = []
    if bundle.raw_features is not None and "raw" in recipe.eval.baselines:
        rows.append(Row(name="raw input", kind="raw", identity={"kind": "raw"}))
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
        trained = load_trained(run, root=data_root)
        encoder = next(iter(trained.encoders.values()))
        spec = next(iter(run_recipe.towers.values())).encoder
        arch = json.dumps(spec.model_dump(), sort_keys=True)
        if arch not in seen_arch and "random_init" in recipe.eval.baselines:
            seen_arch.add(arch)
            fresh = next(iter(random_init_encoders(run_recipe, bundle, seed=recipe.seed + 1).values()))
            rows.append(Row(name=f"random init ({spec.name})", kind="random init", encoder=fresh,
                            identity={"kind": "random init", "architecture": spec.model_dump(),
                                      "seed": recipe.seed + 1}, modality=ENCODERS.get(spec.name).modality))
        rows.append(Row(name=f"SSL: {run_recipe.objective.name} ({run.name})", kind="ssl", encoder=encoder,
                        modality=ENCODERS.get(spec.name).modality))
    for spec_text in publics:
        label, encoder, component = parse_public(spec_text, dict(bundle.input_spec))
        modality = ENCODERS.get(component.name).modality if component is not None else "any"
        if component is not None and not seen_arch:
            # A random-init twin of the public architecture when no SSL run supplied one.
            from omnissl.core.instantiate import build_component

            if "pretrained" in ENCODERS.get(component.name).signature.parameters:
                twin = Component(name=component.name, **{**component.params, "pretrained": False})
                torch.manual_seed(recipe.seed + 1)
                rows.append(Row(name=f"random init ({component.name})", kind="random init",
                                encoder=build_component(ENCODERS, twin, "--public", dict(bundle.input_spec)),
                                modality=modality))
                seen_arch.add(component.name)
        rows.append(Row(name=label, kind="public", encoder=encoder, modality=modality))
    return recipe, assembled, rows
