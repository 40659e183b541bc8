"""The report's sections that come from files alone (``eval.json``, ``recipe.yaml``, ``metrics.jsonl``): the
evaluation and fine-tuning tables, the k-NN reference lines, and one line for each section a run does not have,
saying why (a short smoke run would otherwise look like a broken report)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from omnissl.core.errors import ConfigError
from omnissl.report.html import Section

Table = tuple[list[str], list[list[str]]]


def eval_table(report: dict[str, Any]) -> Table:
    """One ``eval.json`` table (a :class:`omnissl.eval.table.ResultTable`) → (header, rows), the one renderer."""
    from omnissl.eval.table import ResultTable

    return ResultTable.from_json(report).grid()


def evaluation_sections(evaluation: dict[str, Any]) -> list[Section]:
    """Every tower's result table (frozen-feature protocols, fine-tuning when ``eval --finetune`` ran) and the
    paired protocols' table."""
    frozen = Section(title="evaluation (the recipe's protocols; mean ± std over seeds, %)")
    tuned = any(p.startswith("finetune") for report in evaluation.values() for p in report.get("protocols", []))
    for tower, report in evaluation.items():
        if not report.get("rows"):
            continue
        what = "cross-modal retrieval and zero-shot" if tower == "retrieval" else f"tower '{tower}'"
        frozen.paragraphs.append(f"{what} on {report.get('dataset')}: {report.get('train_samples')} train / "
                                 f"{report.get('test_samples')} test samples")
        frozen.tables.append(eval_table(report))
        frozen.paragraphs += list(report.get("notes", []))
    if not tuned:
        frozen.paragraphs.append("fine-tuning not run: add it with omnissl eval RUN_DIR --finetune last_blocks full")
    return [frozen] if frozen.tables else []


def knn_references(evaluation: dict[str, Any] | None) -> dict[str, dict[int, float]]:
    """``{"random init": {20: acc}, "raw input": {...}}`` from the main tower's final evaluation, for the lines
    beside the k-NN monitor curve; empty when the run was not evaluated."""
    rows = ((evaluation or {}).get("main") or {}).get("rows", [])
    references: dict[str, dict[int, float]] = {}
    for row in rows:
        by_k = row.get("cells", {}).get("knn", {}).get("details", {}).get("by_k", {})
        if row.get("kind") in ("random init", "raw") and by_k:
            references[row["name"]] = {int(k.rsplit("=", 1)[1]): float(v) for k, v in by_k.items()
                                       if k.rsplit("=", 1)[-1].isdigit()}
    return references


def train_settings(run_dir: Path) -> dict[str, Any]:
    """The run's ``train`` block from ``recipe.yaml`` with the recipe defaults filled in ({} without a recipe)."""
    from omnissl.core.config import TrainConfig, read_yaml_file

    path = run_dir / "recipe.yaml"
    if not path.is_file():
        return {}
    try:
        raw = read_yaml_file(path)
    except ConfigError:
        return {}
    train = raw.get("train") if isinstance(raw, dict) else None
    defaults = {name: info.default for name, info in TrainConfig.model_fields.items()}
    return {**defaults, **(train if isinstance(train, dict) else {})}


def missing_curves(records: list[dict[str, Any]], train: dict[str, Any]) -> list[str]:
    """One line per training plot the run has no data for, with the reason read from the recipe."""
    last = max((int(r["step"]) for r in records), default=0)
    notes = []
    if records and not any(k.startswith("collapse/") for r in records for k in r):
        every = train.get("monitor_every")
        if isinstance(every, int) and last < every:
            notes.append(f"collapse monitor: run shorter than train.monitor_every ({last} < {every} steps)")
        elif train:
            notes.append("collapse monitor: the objective returns no embeddings for it to measure")
    if records and not any(k.startswith("knn_top1") for r in records for k in r):
        every = train.get("knn_every")
        if every == 0:
            notes.append("k-NN monitor: train.knn_every is 0 (set e.g. train.knn_every=50 to plot k-NN over "
                         "training)")
        elif isinstance(every, int) and last < every:
            notes.append(f"k-NN monitor: run shorter than train.knn_every ({last} < {every} steps)")
        elif train:
            notes.append("k-NN monitor: not measured (the dataset publishes no labels to carve a validation split from)")
    return notes


def recipe_text(path: Path) -> str:
    """The recipe as readable YAML: ``recipe.yaml`` is written ASCII-escaped ("\\u2014"), shown with its characters."""
    from omnissl.core.config import read_yaml_file

    try:
        return yaml.safe_dump(read_yaml_file(path), sort_keys=False, allow_unicode=True)
    except (ConfigError, yaml.YAMLError):  # shown as written: the page must still say what the recipe was
        return path.read_text(encoding="utf-8", errors="replace")
