"""Issue 22 item 2: the report a new user gets from a short run — plots that are never empty frames, class names,
stratified retrieval queries, k-NN reference lines, fine-tune results, a readable compare page, "1 seed" instead
of "± 0.00", and a reason for every absent section."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from omnissl.cli.main import main
from omnissl.workflows.compare import markdown_table
from omnissl.eval.table import ResultTable
from omnissl.eval.summary import mean_std, score
from omnissl.report import embedding_map, extras, plots, write_report
from omnissl.report.compare_page import write_compare_outputs

DEMO = Path(__file__).resolve().parents[2] / "recipes" / "image" / "simclr_digits.yaml"
# 2 steps, every series logged once (log_every = monitor_every = knn_every = 2): the run whose report had empty frames.
TWO_STEPS = ["encoder.width=8", "objective.hidden_dim=32", "objective.projection_dim=16", "train.steps=2",
             "train.batch_size=32", "train.log_every=2", "train.warmup_steps=1", "train.monitor_every=2",
             "train.knn_every=2", "train.knn_samples=100", "train.checkpoint_every=2", "eval.max_train_samples=200",
             "eval.max_test_samples=100", "eval.probe_seeds=1", "eval.probe_max_iter=30"]


def _drawn(line: Any) -> bool:
    """A line shows on the page when it joins 2+ finite points or marks its points."""
    xs, ys = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
    finite = int(np.sum(np.isfinite(xs) & np.isfinite(ys)))
    return finite >= 2 or (finite >= 1 and line.get_marker() not in (None, "None", "", " ", "none"))


def _summary(fig: Any) -> list[dict[str, Any]]:
    axes = []
    for ax in fig.axes:
        legend = ax.get_legend()
        low, high = sorted(ax.get_xlim())
        ticks = [float(t) for t in ax.get_xticks() if low <= t <= high]
        axes.append({"title": ax.get_title(), "xticks": ticks, "lines": [(line.get_label(), _drawn(line)) for line in ax.lines],
                     "points": sum(len(c.get_offsets()) for c in ax.collections), "images": len(ax.images),
                     "legend": [t.get_text() for t in legend.get_texts()] if legend else []})
    return axes


@pytest.fixture()
def figures(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[dict[str, Any]]]:
    """Every figure the report saves, by file name: per axes its lines (drawn or not), points, images, legend."""
    seen: dict[str, list[dict[str, Any]]] = {}
    original = plots._save

    def spy(fig: Any, path: Path) -> Path:
        seen[Path(path).name] = _summary(fig)
        return original(fig, path)

    for module in (plots, extras, embedding_map):
        monkeypatch.setattr(module, "_save", spy)
    return seen


@pytest.fixture(scope="module")
def two_step_run(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Iterator[Path]:
    run = tmp_path_factory.mktemp("first_hour") / "run"
    assert main(["train", str(DEMO), "--run-dir", str(run), "--data-root", str(data_root), *TWO_STEPS]) == 0
    yield run


def test_a_two_step_run_has_no_empty_plot_and_shows_finetune_and_references(
        two_step_run: Path, figures: dict[str, Any], browser_facts: Any, data_root: Path) -> None:
    # The real CLI path: eval --finetune adds fine-tune results to eval.json, then rewrites the report.
    assert main(["eval", str(two_step_run), "--data-root", str(data_root), "--finetune", "last_blocks",
                 "--finetune-min-steps", "2", "--finetune-epochs", "0.01"]) == 0
    assert {"loss_lr.png", "knn_accuracy.png", "collapse_monitor.png", "embedding_map.png",
            "retrieval.png"} <= set(figures)
    for name, axes in figures.items():
        for ax in axes:
            if ax["images"]:
                continue
            assert ax["lines"] or ax["points"], f"{name} '{ax['title']}': an axes with nothing drawn"
            assert all(drawn for _, drawn in ax["lines"]), f"{name} '{ax['title']}': invisible series {ax['lines']}"
    for name in ("loss_lr.png", "knn_accuracy.png", "collapse_monitor.png"):
        for ax in figures[name]:
            if ax["lines"]:  # the step axis: whole steps, not 1.900 … 2.100
                assert len(ax["xticks"]) >= 2 and all(t == int(t) for t in ax["xticks"]), (name, ax["xticks"])
    knn_legend = figures["knn_accuracy.png"][0]["legend"]
    assert any(t.startswith("random init") for t in knn_legend) and any(t.startswith("raw input") for t in knn_legend)
    assert not any("knn_top1" in t for t in knn_legend), "the legend names the raw metrics key"
    assert "learning rate (right)" in figures["loss_lr.png"][0]["legend"]
    page = (two_step_run / "report.html").read_text(encoding="utf-8")
    assert "fine-tune last_blocks" in page and "fine-tuning not run" not in page
    assert "(1 seed)" in page and "± 0.00" not in page
    assert "SimCLR on scikit-learn digits — no download" in page, "the recipe is shown with its characters"
    facts = browser_facts(two_step_run / "report.html")
    assert facts["loaded"] == facts["total"] == len(re.findall(r"<img ", page))
    assert min(facts["ink"]) > 50, f"an image with (almost) no coloured pixels: {facts['ink']}"


def test_report_uses_class_names_and_stratified_queries(tmp_path: Path, figures: dict[str, Any]) -> None:
    from PIL import Image

    # An image folder with named classes, the first class filling the start of the test split.
    rng = np.random.default_rng(0)
    for split, per_class in (("train", 12), ("test", 6)):
        for index, name in enumerate(("cat", "dog", "fox")):
            (tmp_path / "pets" / split / name).mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 80, (16, 16, 3), dtype=np.uint8) + 80 * index
                Image.fromarray(pixels).save(tmp_path / "pets" / split / name / f"{i}.png")
    recipe = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    recipe["data"] = {"name": "image_folder", "root": "pets", "image_size": 16}
    (tmp_path / "pets.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    run = tmp_path / "run"
    assert main(["train", str(tmp_path / "pets.yaml"), "--run-dir", str(run), "--data-root", str(tmp_path),
                 *TWO_STEPS, "train.batch_size=8", "train.knn_every=0"]) == 0
    assert set(figures["embedding_map.png"][0]["legend"]) == {"cat", "dog", "fox"}
    titles = [ax["title"] for ax in figures["retrieval.png"] if ax["title"].startswith("query")]
    assert {t.removeprefix("query: ") for t in titles} == {"cat", "dog", "fox"}, titles


def test_stratified_queries_cover_every_class_and_are_seeded() -> None:
    labels = torch.tensor([0] * 50 + [1] * 5 + [2] * 5 + [3] * 30)
    picked = extras.stratified_queries(labels=labels, count=6, seed=0)
    assert len(picked) == 6 and len(set(picked.tolist())) == 6
    counts = torch.bincount(labels[picked], minlength=4)
    assert counts.min() >= 1 and counts.max() - counts.min() <= 1
    assert torch.equal(picked, extras.stratified_queries(labels=labels, count=6, seed=0))
    assert not torch.equal(picked, extras.stratified_queries(labels=labels, count=6, seed=1))
    assert len(extras.stratified_queries(labels=torch.tensor([1, 1]), count=6, seed=0)) == 2


def test_one_seed_is_written_as_one_seed_everywhere() -> None:
    assert mean_std(mean=0.96, std=0.0, seeds=1) == "96.00 (1 seed)"
    assert mean_std(mean=0.9852, std=0.0013, seeds=3) == "98.52 ± 0.13"
    assert score(result={"mean": 0.5, "std": 0.0, "per_seed": [0.5]}) == "50.00 (1 seed)"
    assert score(result={"mean": 0.5, "std": 0.01}) == "50.00 ± 1.00", "unknown seed count: the plain form"
    probe = {"mean": 0.7, "std": 0.0, "per_seed": [0.7]}
    report = ResultTable(dataset="d", tower="main", train_samples=1, test_samples=1, protocols=["knn", "linear_probe"],
                         rows=[{"name": "x", "kind": "ssl", "dim": 2, "cells": {
                             "knn": {"columns": {"k-NN k=20": {"mean": 0.5, "plain": True}}},
                             "linear_probe": {"score": probe, "columns": {"linear probe": probe}}}}])
    assert "70.00 (1 seed)" in report.table() and "±" not in report.table().split("\n", 2)[2]


def _compare_result() -> dict[str, Any]:
    def row(name: str, kind: str, mean: float) -> dict[str, Any]:
        probe = {"mean": mean, "std": 0.0034, "per_seed": [mean - 0.003, mean, mean + 0.003]}
        curve = {f"{f}% labels": {"mean": mean - 0.05, "std": 0.0123, "labels": 10, "seeds": 3} for f in ("1", "10")}
        curve["100% labels"] = {"mean": mean, "std": 0.0034, "labels": 100, "seeds": 3}
        cells = {"knn": {"score": {"mean": mean - 0.01}, "columns": {"k-NN k=20": {"mean": mean - 0.01, "plain": True}}},
                 "linear_probe": {"score": probe, "columns": {"linear probe": probe}},
                 "label_efficiency": {"score": curve["1% labels"], "columns": curve}}
        if kind != "raw":
            for mode in ("last_blocks", "full"):
                tuned = {"mean": 0.96, "std": 0.0, "per_seed": [0.96], "seeds": 1}
                cells[f"finetune {mode}"] = {"score": tuned, "columns": {f"fine-tune {mode}": tuned}}
        return {"name": name, "kind": kind, "dim": 128, "cells": cells}

    return {"dataset": "digits", "tower": "main", "train_samples": 100, "test_samples": 50, "probe_seeds": 3,
            "protocols": ["knn", "linear_probe", "label_efficiency", "finetune last_blocks", "finetune full"],
            "fractions": [0.01, 0.1, 1.0], "finetune": {"modes": ["last_blocks", "full"], "mode": "last_blocks", "blocks": 1, "epochs": 1.0, "min_steps": 100,
                         "batch_size": 64, "lr": 0.003, "encoder_lr_scale": 0.1, "weight_decay": 0.0001, "seeds": 1},
            "rows": [row("raw input", "raw", 0.9652), row("random init (resnet10)", "random init", 0.9615),
                     row("SSL: simclr (a)", "ssl", 0.9852), row("SSL: simclr (b)", "ssl", 0.9852)],
            "verdict": "'SSL: simclr (a)' beats the best baseline 'raw input' by 2.0 points on the linear probe: use it."}


def test_compare_page_renders_settings_and_keeps_values_on_one_line(tmp_path: Path, browser_facts: Any) -> None:
    result = _compare_result()
    paths = write_compare_outputs(result, tmp_path)
    page = paths["html"].read_text(encoding="utf-8")
    assert "{&#x27;" not in page and "{'" not in page, "the settings are a raw Python dict"
    assert "fine-tuning: last_blocks, full (1 last block(s) for last_blocks, 1 epoch(s)" in page
    assert "96.00 (1 seed)" in page and "± 0.00" not in page and "98.52 ± 0.34" in page
    assert "96.00 (1 seed)" in markdown_table(result)
    facts = browser_facts(paths["html"])
    assert facts["wrapped"] == 0 and facts["loaded"] == facts["total"] == 1
    assert "fine-tuning: off" in write_compare_outputs({**result, "finetune": {"modes": []}},
                                                       tmp_path / "off")["html"].read_text(encoding="utf-8")


def test_absent_sections_say_why(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_text("".join(f'{{"step": {s}, "loss": {2 - s / 40}, "lr": 0.001}}\n'
                                                    for s in range(10, 41, 10)))
    (tmp_path / "recipe.yaml").write_text("train:\n  steps: 40\n  knn_every: 0\n  monitor_every: 50\n")
    page = write_report(tmp_path).read_text(encoding="utf-8")
    assert "collapse monitor: run shorter than train.monitor_every (40 &lt; 50 steps)" in page
    assert "k-NN monitor: train.knn_every is 0" in page
    assert "no eval.json" in page and "not drawn: no checkpoint" in page
    (tmp_path / "recipe.yaml").write_text("train:\n  steps: 40\n  knn_every: 100\n")
    assert "k-NN monitor: run shorter than train.knn_every (40 &lt; 100 steps)" in write_report(tmp_path).read_text()


def test_knn_plot_draws_reference_lines_and_single_points(tmp_path: Path, figures: dict[str, Any]) -> None:
    records = [{"step": 50, "knn_top1_k20": 0.95, "collapse/embedding_std": 0.05,
                "collapse/effective_rank": 60.0, "collapse/embedding_std_ideal": 1 / math.sqrt(128)}]
    plots.plot_knn(records, tmp_path / "knn.png", references={"random init": {20: 0.93, 200: 0.9},
                                                              "raw input": {20: 0.97}})
    (ax,) = figures["knn.png"]
    assert ax["legend"] == ["this run (monitor, k=20)", "random init (final eval, k=20)",
                            "raw input (final eval, k=20)"]
    assert all(drawn for _, drawn in ax["lines"])
    plots.plot_collapse(records, tmp_path / "collapse.png")
    left, right = figures["collapse.png"]
    assert all(d for _, d in left["lines"] + right["lines"]) and any("ideal" in t for t in left["legend"])
