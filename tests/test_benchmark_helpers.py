"""The image benchmark's helpers that decide what a published number means: the validation split used to choose
recipe settings never contains a test image, and merging parallel runs refuses parts with different budgets."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from omnissl.core.types import DataBundle

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # the benchmarks import their shared helpers as siblings


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("image_objectives", ROOT / "benchmarks" / "image_objectives.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_validation_split_is_a_disjoint_shuffle_of_train_only(bench) -> None:
    train = TensorDataset(torch.arange(100), torch.arange(100) // 10)  # sorted by class, like the stored subset
    test = TensorDataset(torch.arange(1000, 1050), torch.zeros(50, dtype=torch.long))
    bundle = DataBundle(train=train, test=test, collate=lambda rows: rows)
    split = bench.validation_bundle(bundle)
    memory = {int(split.train[i][0]) for i in range(len(split.train))}
    queries = {int(split.test[i][0]) for i in range(len(split.test))}
    assert len(memory) == 80 and len(queries) == 20
    assert memory.isdisjoint(queries) and memory | queries == set(range(100))  # nothing from test, nothing lost
    assert len({int(split.test[i][1]) for i in range(len(split.test))}) > 3  # shuffled: queries span classes
    assert bench.validation_bundle(bundle).test.indices == split.test.indices  # seeded


def test_merge_refuses_parts_with_different_budgets(bench, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(bench, "RESULTS", tmp_path)
    for stem, minutes in [("a", 12.0), ("b", 6.0)]:
        (tmp_path / f"{stem}.json").write_text(json.dumps(
            {"minutes": minutes, "threads": 1, "command": stem, "results": [], "baselines": {}}), encoding="utf-8")
    with pytest.raises(SystemExit, match="differ in"):
        bench.merge(argparse.Namespace(merge=["a", "b"], name="merged"))
    assert not (tmp_path / "merged.json").exists()


def test_step_calibration_times_real_steps_and_rejects_zero() -> None:
    """The CPU-budget planner both image and speech benchmarks use: a positive per-step time from real steps."""
    from cpu_budget import step_cpu_seconds

    from omnissl.core.config import load_recipe

    recipe = load_recipe(ROOT / "recipes" / "image" / "simclr.yaml",
                         ["encoder.width=4", "objective.hidden_dim=16", "objective.projection_dim=8", "train.batch_size=8"])
    assert step_cpu_seconds(recipe, synthetic=16, steps=1) > 0
    with pytest.raises(ValueError, match="steps must be"):
        step_cpu_seconds(recipe, synthetic=16, steps=0)


def test_graph_profile_times_the_same_product_dense_and_sparse() -> None:
    """The dense-vs-CSR ratio in ``graph_step_profile.py`` compares equal work: same output and weight gradient."""
    from graph_step_profile import input_projection

    torch.manual_seed(0)
    x = (torch.rand(50, 40) < 0.05).float()
    grads = []
    for sparse in (False, True):
        weight = torch.nn.Parameter(torch.arange(320.0).reshape(8, 40) / 320)
        out = input_projection(x, weight, sparse=sparse, dropout=0.0)
        out.square().sum().backward()
        grads.append((out.detach(), weight.grad))
    assert torch.allclose(grads[0][0], grads[1][0], atol=1e-5)
    assert torch.allclose(grads[0][1], grads[1][1], atol=1e-4)


def test_text_replace_drops_only_the_methods_own_rows() -> None:
    """``text.py --merge --replace``: the method's trained row and its random-init twin go; baselines and the other
    methods' rows stay; an unrecognised layout is refused rather than guessed at."""
    from text import drop_method_rows

    rows = [{"name": "MiniLM"}, {"name": "mlm (400 steps)"}, {"name": "random init (bert)"},
            {"name": "causal_lm (202 steps)"}, {"name": "random init (gpt2)"}, {"name": "hashed TF-IDF of bpe ids"}]
    results = {"tables": {"sst2": [dict(r) for r in rows]}, "pretraining": {"mlm": {}, "causal_lm": {}}}
    drop_method_rows(results, "causal_lm")
    assert [r["name"] for r in results["tables"]["sst2"]] == ["MiniLM", "mlm (400 steps)", "random init (bert)",
                                                              "hashed TF-IDF of bpe ids"]
    assert list(results["pretraining"]) == ["mlm"]
    broken = {"tables": {"sst2": [{"name": "causal_lm (202 steps)"}, {"name": "MiniLM"}]}, "pretraining": {"causal_lm": {}}}
    with pytest.raises(SystemExit, match="no single 'causal_lm"):
        drop_method_rows(broken, "causal_lm")


def test_graph_sweep_never_chooses_a_run_over_the_cpu_budget() -> None:
    """A longer run shows what more compute would give; the chosen setting is the best validation score among the
    runs within the issue's budget, and with no run inside the budget the best of all is shown rather than none."""
    from graph_table import ISSUE_BUDGET_CPU_MINUTES, best_on_validation

    def entry(tag: str, minutes: float, val: float) -> dict:
        return {"tag": tag, "cpu_minutes_cap": minutes, "val": {"mean": val}}

    entries = [entry("short", ISSUE_BUDGET_CPU_MINUTES, 0.80), entry("long", 3 * ISSUE_BUDGET_CPU_MINUTES, 0.84),
               entry("shorter", ISSUE_BUDGET_CPU_MINUTES / 2, 0.79)]
    assert best_on_validation(entries)["tag"] == "short"
    assert best_on_validation(entries[1:2])["tag"] == "long"


def test_graph_sweep_record_adds_and_replaces_by_key(tmp_path, monkeypatch) -> None:
    """Each tagged trial is one entry per dataset × method × tag: a rerun replaces its own entry, others stay."""
    import graph

    monkeypatch.setattr(graph, "RESULTS", tmp_path)
    graph.record_sweep({"dataset": "MUTAG", "method": "infograph", "val": 1}, "a")
    graph.record_sweep({"dataset": "Cora", "method": "graphmae", "val": 2}, "a")
    graph.record_sweep({"dataset": "MUTAG", "method": "infograph", "val": 3}, "a")
    entries = json.loads((tmp_path / "graph_sweep.json").read_text())["entries"]
    assert sorted((e["dataset"], e["val"]) for e in entries) == [("Cora", 2), ("MUTAG", 3)]


def test_timeseries_budget_follows_the_side_by_side_reference(tmp_path) -> None:
    """``--budget reference`` caps a run at the CPU seconds of the authors' code measured beside ours when that file
    exists (and says so), else at the issue's figures from an earlier machine."""
    import timeseries

    missing = timeseries.reference_numbers(tmp_path / "absent.json")
    assert missing["source"].startswith("issue 24") and missing["numbers"]["GunPoint"][1] == 42.4
    measured = tmp_path / "ts2vec_reference.json"
    measured.write_text(json.dumps({"summary": {"GunPoint": {"accuracy": 0.98, "train_cpu_s": 30.0}}}))
    found = timeseries.reference_numbers(measured)
    assert found["source"].endswith("(same machine)") and found["numbers"] == {"GunPoint": [0.98, 30.0]}
    assert timeseries.budget_overrides("GunPoint", "reference", None, found) == [
        "train.max_minutes=null", "train.max_cpu_minutes=0.5000"]
    assert timeseries.budget_overrides("GunPoint", "recipe", None, found) == []
    with pytest.raises(SystemExit, match="no ArrowHead run"):
        timeseries.budget_overrides("ArrowHead", "reference", None, found)
