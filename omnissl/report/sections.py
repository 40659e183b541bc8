"""The report's sections that come from files alone (``eval.json``, ``recipe.yaml``, ``metrics.jsonl``): the
evaluation and fine-tuning tables, the k-NN reference lines, and one line for each section a run does not have,
saying why (a short smoke run would otherwise look like a broken report)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from omnissl.core.errors import ConfigError
from omnissl.eval.summary import score
from omnissl.report.html import Section

Table = tuple[list[str], list[list[str]]]


def eval_table(report: dict[str, Any]) -> Table:
    """``eval.json``'s per-tower report → (header, rows) with k-NN columns and probe mean ± std (in %)."""
    rows = report.get("rows", [])
    knn_keys = list(rows[0]["knn"]) if rows else []
    header = ["features", "dim", *[f"k-NN {k}" for k in knn_keys], "linear probe (mean ± std)"]
    body = [[row["name"], str(row["feature_dim"]), *[f"{100 * row['knn'][k]:.2f}" for k in knn_keys],
             score(result=row["probe"])] for row in rows]
    return header, body


def finetune_table(results: dict[str, Any]) -> Table:
    """``eval.json``'s ``finetune`` part (``omnissl eval --finetune``) → one row per mode."""
    header = ["mode", "trained blocks", "epochs", "min steps", "test accuracy"]
    body = [[mode, "all" if r.get("blocks") is None else str(r["blocks"]), f"{r.get('epochs', '?')}",
             str(r.get("min_steps", "?")), score(result=r)] for mode, r in results.items()]
    return header, body


def retrieval_table(report: dict[str, Any]) -> Table:
    """A paired run's ``retrieval`` report → recall@k both ways and zero-shot accuracy (in %)."""
    header = ["model", "direction", "match", "R@1", "R@5", "R@10", "zero-shot acc"]
    body = [[row["model"], row["direction"], row["by"], *[f"{100 * row['recall'][k]:.2f}" for k in
             ("R@1", "R@5", "R@10")], f"{100 * row['zero_shot']:.2f}"] for row in report.get("rows", [])]
    return header, body


def evaluation_sections(evaluation: dict[str, Any]) -> list[Section]:
    """The frozen-feature tables (and the fine-tuning table, when ``eval --finetune`` ran) of every tower."""
    frozen = Section(title="evaluation (frozen features; probe mean ± std over seeds, %)")
    tuned = Section(title="fine-tuning (omnissl eval --finetune; test accuracy, %)")
    for tower, report in evaluation.items():
        where = (f"tower '{tower}' on {report.get('dataset')}: {report.get('train_samples')} train / "
                 f"{report.get('test_samples')} test samples")
        if tower == "retrieval":
            frozen.paragraphs.append(f"cross-modal retrieval on {report.get('dataset')}")
            frozen.tables.append(retrieval_table(report))
            continue
        if report.get("rows"):
            frozen.paragraphs.append(where)
            frozen.tables.append(eval_table(report))
        if report.get("finetune"):
            tuned.paragraphs.append(f"tower '{tower}'")
            tuned.tables.append(finetune_table(report["finetune"]))
    if not tuned.tables:
        tuned.paragraphs.append("not run: add it with omnissl eval RUN_DIR --finetune last_blocks full")
    return [section for section in (frozen, tuned) if section.tables or section is tuned]


def knn_references(evaluation: dict[str, Any] | None) -> dict[str, dict[int, float]]:
    """``{"random init": {20: acc}, "raw input": {...}}`` from the main tower's final evaluation, for the lines
    beside the k-NN monitor curve; empty when the run was not evaluated."""
    rows = ((evaluation or {}).get("main") or {}).get("rows", [])
    references: dict[str, dict[int, float]] = {}
    for row in rows:
        if row.get("name") in ("random init", "raw input"):
            references[row["name"]] = {int(k.removeprefix("k=")): float(v) for k, v in row.get("knn", {}).items()
                                       if k.removeprefix("k=").isdigit()}
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
            notes.append("k-NN monitor: not measured (the dataset has no test split, or the run is paired)")
    return notes


def recipe_text(path: Path) -> str:
    """The recipe as readable YAML: ``recipe.yaml`` is written ASCII-escaped ("\\u2014"), shown with its characters."""
    from omnissl.core.config import read_yaml_file

    try:
        return yaml.safe_dump(read_yaml_file(path), sort_keys=False, allow_unicode=True)
    except (ConfigError, yaml.YAMLError):  # shown as written: the page must still say what the recipe was
        return path.read_text(encoding="utf-8", errors="replace")
