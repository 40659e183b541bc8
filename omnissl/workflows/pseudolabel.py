"""``omnissl pseudolabel RUN``: the ``pseudolabel`` protocol (:mod:`omnissl.eval.self_training`) on a trained run's
towers beside random init and the raw input, through the one engine; the table goes to Markdown and JSON.

The run is rebuilt as ``omnissl eval`` rebuilds it (``load_trained``: ``recipe.yaml``, the ``input_spec`` recorded in
``resolved.yaml``, the latest or given checkpoint); the probe settings come from the recipe's ``eval`` section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omnissl.core.errors import ConfigError
from omnissl.eval.engine import run_table
from omnissl.eval.protocol import Row
from omnissl.eval.self_training import build_pseudolabel, gain
from omnissl.eval.table import ResultTable, format_column
from omnissl.train.assemble import Assembled
from omnissl.train.distributed import resolve_device
from omnissl.workflows.baseline_cache import BaselineCache, cache_root
from omnissl.workflows.evaluation import baseline_rows, cache_scope, make_context


def pseudolabel_assembled(assembled: Assembled, *, fractions: list[float], seeds: int, rounds: int = 1,
                          run_root: Path | None = None, source: str = "run") -> dict[str, ResultTable]:
    """``{tower: ResultTable}``: the trained row, then its baselines, each with "probe @f" and
    "probe + pseudo-labels @f" per fraction. ``run_root`` caches the baseline cells (``<run_root>/.cache``)."""
    recipe, bundle = assembled.recipe, assembled.bundle
    if bundle.num_classes is None:
        raise ConfigError(f"pseudolabel: {source}: dataset '{recipe.data.name}' publishes no labels (num_classes is "
                          f"None); self-training needs a labelled fraction of train and a labelled test split")
    try:
        protocol = build_pseudolabel(fractions=fractions, seeds=seeds, rounds=rounds,
                                     max_iter=recipe.eval.probe_max_iter,
                                     weight_decays=list(recipe.eval.probe_weight_decays),
                                     val_fraction=recipe.eval.val_fraction)
    except ValueError as error:
        raise ConfigError(f"pseudolabel: {error}") from None
    ctx = make_context(assembled, resolve_device(recipe.train.device))
    cache = BaselineCache(cache_root(run_root)) if run_root is not None else None
    scope = cache_scope(assembled, ctx) if cache is not None else None
    tables = {}
    for tower, encoder in assembled.encoders.items():
        rows = [Row(name=f"{recipe.objective.name} (trained)", kind="ssl", encoder=encoder,
                    select=assembled.selector(tower)), *baseline_rows(assembled, tower, seed=recipe.seed + 1)]
        tables[tower] = run_table(rows, [protocol], ctx, tower=tower, cache=cache, scope=scope)
    return tables


def choices_line(table: ResultTable) -> list[str]:
    """One line per row and fraction: the gain, the validation-chosen keep shares and the pseudo-labels' accuracy."""
    lines = []
    for row in table.rows:
        found = row["cells"].get("pseudolabel", {}).get("details", {}).get("fractions", {})
        for label, entry in found.items():
            keeps = [r["rounds"][-1]["keep"] for r in entry["per_seed"]]
            right = [s["pseudo_label_accuracy"] for r in entry["per_seed"] for s in r["rounds"]
                     if s["pseudo_label_accuracy"] is not None]
            accuracy = f"{100 * sum(right) / len(right):.1f}%" if right else "—"
            reference = entry.get("label_efficiency")
            tail = f"; label_efficiency protocol {format_column(reference)}" if reference else ""
            lines.append(f"- {row['name']} @{label}: {entry['labels']} labels, {gain(entry):+.2f} points; keep share "
                         f"chosen on validation per seed {keeps}; pseudo-labels right {accuracy}{tail}")
    return lines


def markdown(tables: dict[str, ResultTable], *, header: str) -> str:
    parts = [header]
    for tower, table in tables.items():
        title = f"\n{table.dataset} — tower '{tower}' — {table.train_samples} train / {table.test_samples} test samples\n"
        parts += [title, table.table(), "", *choices_line(table)]
    return "\n".join(parts) + "\n"


def as_json(tables: dict[str, ResultTable], **extra: Any) -> dict[str, Any]:
    return {**extra, "tables": {tower: table.to_json() for tower, table in tables.items()}}
