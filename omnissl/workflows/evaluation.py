"""What ``train``'s final evaluation, ``omnissl eval`` and ``omnissl compare`` run: the rows of one assembled
recipe handed to the engine (:mod:`omnissl.eval.engine`), one table per tower, plus one table of the paired
protocols (retrieval, zero-shot) when the recipe has several towers. No caller branches on single vs paired: the
towers come from :class:`omnissl.train.assemble.Assembled`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from omnissl.core.errors import ConfigError
from omnissl.core.registry import DATASETS, OBJECTIVES
from omnissl.eval.engine import EvalContext, Row, build_protocols, fixed_subsets, run_table
from omnissl.eval.readout import BlockReadout
from omnissl.eval.splits import dataset_labels, indices_hash
from omnissl.eval.table import ResultTable
from omnissl.train.assemble import Assembled, random_init_encoders
from omnissl.train.distributed import autocast_dtype, resolve_device
from omnissl.workflows.baseline_cache import BaselineCache, cache_root


def make_context(assembled: Assembled, device: torch.device) -> EvalContext:
    recipe, bundle = assembled.recipe, assembled.bundle
    train_set, test_set = fixed_subsets(bundle, recipe.eval, dataset_name=recipe.data.name)
    return EvalContext(bundle=bundle, train_set=train_set, test_set=test_set, device=device,
                       dataset_name=recipe.data.name, modality=DATASETS.get(recipe.data.name).modality,
                       seed=recipe.seed, batch_size=recipe.eval.batch_size,
                       autocast_dtype=autocast_dtype(recipe.train.precision, device))


def cache_scope(assembled: Assembled, ctx: EvalContext) -> dict[str, Any]:
    """The part of every cache key that names the data: recipe ``data`` section, seed, subset limits, labels."""
    recipe = assembled.recipe
    return {"data": recipe.data.model_dump(), "seed": recipe.seed,
            "limits": [recipe.eval.max_train_samples, recipe.eval.max_test_samples],
            "labels": [indices_hash(dataset_labels(s, ctx.bundle)) for s in (ctx.train_set, ctx.test_set)]}


def read_out(encoder: Any, block: int | None, *, tower: str) -> Any:
    """``encoder`` as the evaluation reads it: its final output, or block ``eval.readout_block`` of it."""
    if block is None:
        return encoder
    try:
        return BlockReadout(encoder, block=block)
    except TypeError as error:
        raise ConfigError(f"eval.readout_block: tower '{tower}' encoder {type(encoder).__name__} has no "
                          "transformer blocks to read from (it needs tokenize + encode_tokens)") from error


def baseline_rows(assembled: Assembled, tower: str, *, seed: int) -> list[Row]:
    """Random init (same architecture, fresh weights) and, for one-tower data with raw features, the raw input."""
    recipe, bundle = assembled.recipe, assembled.bundle
    rows = []
    if "random_init" in recipe.eval.baselines:
        block = recipe.eval.readout_block
        encoder = read_out(random_init_encoders(recipe, bundle, seed=seed)[tower], block, tower=tower)
        identity = {"kind": "random init", "architecture": recipe.towers[tower].encoder.model_dump(), "seed": seed}
        if block is not None:  # a cached final-output cell must not answer for a block readout
            identity["readout_block"] = block
        rows.append(Row(name="random init", kind="random init", encoder=encoder, select=assembled.selector(tower),
                        identity=identity))
    if "raw" in recipe.eval.baselines and bundle.raw_features is not None and len(assembled.tower_names) == 1:
        rows.append(Row(name="raw input", kind="raw", select=assembled.selector(tower), identity={"kind": "raw"}))
    return rows


def evaluate_assembled(assembled: Assembled, *, trained: bool, device: str | torch.device = "auto",
                       run_root: Path | None = None, extra_rows: dict[str, list[Row]] | None = None) -> dict[str, Any]:
    """``{tower: ResultTable}`` (+ ``"retrieval"`` for paired protocols). ``run_root``: where baseline cells are
    cached (``<run_root>/.cache/baselines``; ``None`` = no cache)."""
    recipe = assembled.recipe
    target = device if isinstance(device, torch.device) else resolve_device(device)
    ctx = make_context(assembled, target)
    protocols = build_protocols(recipe.eval, assembled.bundle)
    cache = BaselineCache(cache_root(run_root)) if run_root is not None else None
    scope = cache_scope(assembled, ctx) if cache is not None else None  # the label hashes cost a pass
    block = recipe.eval.readout_block
    label = f"{recipe.objective.name} ({'trained' if trained else 'untrained'}{'' if block is None else f', block {block}'})"
    tables: dict[str, Any] = {}
    per_tower = [p for p in protocols if p.scope != "objective"]
    for tower, encoder in assembled.encoders.items():
        rows = [Row(name=label, kind="ssl", encoder=read_out(encoder, block, tower=tower), select=assembled.selector(tower)),
                *baseline_rows(assembled, tower, seed=recipe.seed + 1), *(extra_rows or {}).get(tower, [])]
        tables[tower] = run_table(rows, per_tower, ctx, tower=tower, cache=cache, scope=scope)
    paired = [p for p in protocols if p.scope == "objective"]
    if paired:
        tables["retrieval"] = paired_retrieval(assembled, trained=trained, ctx=ctx, protocols=paired)
    return tables


def paired_retrieval(assembled: Assembled, *, trained: bool, ctx: EvalContext, protocols: list[Any]) -> ResultTable:
    """The paired protocols for the trained objective beside the same objective with random-init towers."""
    from omnissl.core.instantiate import build_component

    recipe = assembled.recipe
    rows = [Row(name=f"{recipe.objective.name} ({'trained' if trained else 'untrained'})", kind="ssl",
                objective=assembled.objective.to(ctx.device))]
    if "random_init" in recipe.eval.baselines:
        encoders = random_init_encoders(recipe, assembled.bundle, seed=recipe.seed + 1)
        baseline = build_component(OBJECTIVES, recipe.objective, "objective", {"encoders": encoders})
        rows.append(Row(name="random init", kind="random init", objective=baseline.to(ctx.device)))
    return run_table(rows, protocols, ctx, tower="retrieval")


def evaluate_encoders(encoders: dict[str, Any], bundle: Any, eval_config: Any, *, device: torch.device,
                      dataset_name: str, include_raw: bool = True, seed: int = 0, kinds: dict[str, str] | None = None,
                      modality: str = "any", protocols: list[Any] | None = None, run_root: Path | None = None,
                      scope: dict[str, Any] | None = None) -> ResultTable:
    """The engine on named encoders without a recipe around them (the benchmarks' entry point): one row per encoder
    (``kinds[name]``, default ``"ssl"``), the raw-input row when asked, ``eval_config``'s protocols (or
    ``protocols``, already built). ``scope`` + ``run_root`` cache the rows whose kind is a baseline."""
    ctx = EvalContext(bundle=bundle, train_set=None, test_set=None, device=device, dataset_name=dataset_name,
                      modality=modality, seed=seed, batch_size=eval_config.batch_size)
    ctx.train_set, ctx.test_set = fixed_subsets(bundle, eval_config, dataset_name=dataset_name)
    built = protocols if protocols is not None else build_protocols(eval_config, bundle)
    rows = []
    for name, encoder in encoders.items():
        kind = (kinds or {}).get(name, "ssl")
        identity = {"kind": kind, "name": name} if kind in ("random init",) and scope is not None else None
        rows.append(Row(name=name, kind=kind, encoder=encoder, identity=identity))  # type: ignore[arg-type]
    if include_raw and bundle.raw_features is not None:
        rows.append(Row(name="raw input", kind="raw", identity={"kind": "raw"} if scope is not None else None))
    cache = BaselineCache(cache_root(run_root)) if run_root is not None and scope is not None else None
    return run_table(rows, built, ctx, tower="main", cache=cache, scope=scope)


def legacy_rows(table: ResultTable) -> list[dict[str, Any]]:
    """The table's rows as ``{"name", "dim", "knn": {"k=20": acc}, "probe": {...}}`` (the shape the benchmark
    result files have always had), read from the engine's cells."""
    out = []
    for row in table.rows:
        knn = row["cells"].get("knn", {}).get("details", {}).get("by_k", {})
        probe = row["cells"].get("linear_probe", {})
        out.append({"name": row["name"], "dim": row.get("dim"), "kind": row["kind"],
                    "knn": {k.removeprefix("k-NN "): v for k, v in knn.items()},
                    "probe": {**probe.get("score", {}), **probe.get("details", {}), "metrics": probe.get("metrics", {})}
                    if probe else None})
    return out
