"""Exports round-trip, embeddings match the protocol's features, fine-tuning modes, and the decision table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from omnissl.core.instantiate import build_component
from omnissl.cli.main import main
from omnissl.eval.label_efficiency import label_subset
from omnissl.workflows.compare import verdict
from omnissl.core.config import Component
from omnissl.eval.features import extract_features
from omnissl.eval.finetune import FinetuneConfig, encoder_blocks, finetune, trainable_parameters
from omnissl.workflows.export import CONFIG_NAME, export_encoder, load_exported
from omnissl.core.registry import ENCODERS, load_plugins
from omnissl.workflows.session import load_trained


def test_export_round_trip_rebuilds_the_encoder_without_the_recipe(tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    assert main(["export", str(tiny_run), "--out", str(out)]) == 0
    config = json.loads((out / CONFIG_NAME).read_text())
    assert config["encoder"] == "resnet10" and config["params"]["width"] == 8
    assert config["params"]["in_channels"] == 1, "context values (from the dataset) are recorded too"
    assert config["step"] == 4
    trained = load_trained(tiny_run)
    encoder = load_exported(out)
    bundle = trained.bundle
    batch = bundle.collate([bundle.test[i] for i in range(16)])
    reference = trained.objective.towers["main"].eval()
    assert torch.equal(encoder.eval()(batch["x"]).pooled, reference(batch["x"]).pooled)


def test_hf_encoder_export_loads_with_automodel(tmp_path: Path) -> None:
    from transformers import AutoModel

    load_plugins()
    spec = Component(name="bert", vocab_size=50, dim=16, depth=1, heads=2, max_length=16)
    encoder = build_component(ENCODERS, spec, "encoder").eval()
    export_encoder(encoder, spec, {}, tmp_path, plugins=["text"])
    ids = torch.randint(1, 50, (2, 10))
    mask = torch.ones_like(ids)
    expected = encoder({"input_ids": ids, "attention_mask": mask})
    hf = AutoModel.from_pretrained(str(tmp_path / "hf_model")).eval()
    assert torch.allclose(hf(input_ids=ids, attention_mask=mask).last_hidden_state, expected.tokens, atol=1e-6)
    reloaded = load_exported(tmp_path).eval()
    assert torch.equal(reloaded({"input_ids": ids, "attention_mask": mask}).pooled, expected.pooled)


def test_embed_writes_npy_and_parquet_matching_the_protocol_features(tiny_run: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    assert main(["embed", str(tiny_run), "--split", "test", "--out", str(tmp_path / "e.npy"), "--device", "cpu"]) == 0
    assert main(["embed", str(tiny_run), "--split", "test", "--out", str(tmp_path / "e.parquet"),
                 "--device", "cpu"]) == 0
    trained = load_trained(tiny_run)
    features, labels = extract_features(trained.objective.towers["main"], trained.bundle.test, trained.bundle,
                                        device=torch.device("cpu"))
    matrix = np.load(tmp_path / "e.npy")
    assert matrix.shape == tuple(features.shape) and len(features) == len(trained.bundle.test)
    np.testing.assert_allclose(matrix, features.numpy(), atol=1e-5)
    np.testing.assert_array_equal(np.load(tmp_path / "e.labels.npy"), labels.numpy())
    table = pq.read_table(tmp_path / "e.parquet").to_pydict()
    assert table["row"] == list(range(len(features))) and set(table["split"]) == {"test"}
    np.testing.assert_allclose(np.array(table["embedding"]), features.numpy(), atol=1e-5)


def test_selective_finetuning_trains_the_last_blocks_and_what_follows_them() -> None:
    load_plugins()
    resnet = ENCODERS.get("resnet10").builder(width=8, in_channels=1, mean=(0.5,), std=(0.25,))
    assert len(encoder_blocks(resnet)) == 4 and encoder_blocks(resnet)[-1] is resnet.stages[-1]
    last = {id(p) for p in resnet.stages[-1].parameters()}
    assert {id(p) for p in trainable_parameters(resnet, "last_blocks", 1)} == last
    vit = ENCODERS.get("vit").builder(image_size=8, patch_size=4, dim=16, depth=3, heads=2)
    chosen = {id(p) for p in trainable_parameters(vit, "last_blocks", 2)}
    expected = [*vit.trunk.blocks[1].parameters(), *vit.trunk.blocks[2].parameters(), *vit.trunk.norm.parameters()]
    assert chosen == {id(p) for p in expected}
    assert len(trainable_parameters(vit, "full", 1)) == len(list(vit.parameters()))


def test_finetuning_learns_on_digits_and_leaves_the_callers_encoder_alone(tiny_run: Path) -> None:
    trained = load_trained(tiny_run)
    encoder = trained.objective.towers["main"]
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    bundle = trained.bundle
    train, test = torch.utils.data.Subset(bundle.train, range(300)), torch.utils.data.Subset(bundle.test, range(150))
    config = FinetuneConfig(mode="full", epochs=4, min_steps=1, batch_size=32, lr=1e-2, encoder_lr_scale=0.1)
    result = finetune(encoder, train, test, bundle, config, device=torch.device("cpu"))
    assert result["mean"] > 0.5, f"10 classes: chance is 0.1, fine-tuning reached {result['mean']}"
    assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items())


def test_eval_finetune_mode_from_the_cli(tiny_run: Path) -> None:
    assert main(["eval", str(tiny_run), "--finetune", "last_blocks", "--finetune-epochs", "1",
                 "--finetune-min-steps", "3",
                 "--finetune-lr", "0.01", "eval.max_train_samples=100", "eval.max_test_samples=50"]) == 0
    table = json.loads((tiny_run / "eval.json").read_text())["main"]
    trained = next(r for r in table["rows"] if r["kind"] == "ssl")
    result = trained["cells"]["finetune last_blocks"]
    assert result["details"]["blocks"] == 1 and 0.0 <= result["score"]["mean"] <= 1.0
    assert len(result["score"]["per_seed"]) == 1 and "finetune last_blocks" in table["protocols"]
    assert "linear_probe" in trained["cells"], "the frozen-feature cells stay beside the fine-tuning one"


def test_stratified_subset_keeps_every_class() -> None:
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 3)
    index = label_subset(labels, 0.1, seed=0)
    counts = torch.bincount(labels[index], minlength=3).tolist()
    assert counts == [5, 3, 1]
    assert not torch.equal(index, label_subset(labels, 0.1, seed=1))


def _row(name: str, kind: str, mean: float, std: float = 0.002, knn: float | None = None) -> dict:
    curve = {"1% labels": {"mean": mean - 0.2, "std": 0.0}, "100% labels": {"mean": mean, "std": std}}
    cells = {"linear_probe": {"score": {"mean": mean, "std": std}},
             "label_efficiency": {"score": curve["1% labels"], "columns": curve}}
    if knn is not None:
        cells["knn"] = {"score": {"mean": knn, "std": 0.0}}
    return {"name": name, "kind": kind, "cells": cells}


def test_verdict_follows_the_numbers() -> None:
    rows = [_row("raw", "raw", 0.70), _row("ssl", "ssl", 0.85), _row("pub", "public", 0.845)]
    assert "'pub' is within 0.5 points of the best SSL run 'ssl'" in verdict(rows) and "prefer it" in verdict(rows)
    rows = [_row("raw", "raw", 0.70), _row("ssl", "ssl", 0.90), _row("pub", "public", 0.80)]
    assert "the SSL run 'ssl' beats the public backbone 'pub' by 10.0 points" in verdict(rows)
    rows = [_row("raw", "raw", 0.80, 0.01), _row("ssl", "ssl", 0.805, 0.01)]
    assert "does not beat the baseline 'raw'" in verdict(rows)
    assert "with 1% of the labels the best is 'ssl'" in verdict(rows)
    assert "rank the rows differently" not in verdict(rows)


def test_verdict_flags_knn_and_probe_disagreeing_and_counts_strong_baselines() -> None:
    rows = [_row("raw", "raw", 0.70, knn=0.60), _row("ssl", "ssl", 0.80, knn=0.55),
            _row("TF-IDF + LR", "baseline", 0.89)]
    said = verdict(rows, protocols=["knn", "linear_probe", "label_efficiency"])
    assert "does not beat the baseline 'TF-IDF + LR'" in said, said
    assert "knn and linear_probe rank the rows differently (knn: 'raw' > 'ssl'; linear_probe: 'ssl' > 'raw')" in said


def test_compare_cli_on_real_digits_identical_public_and_ssl_rows_tie(tiny_run: Path, tmp_path: Path,
                                                                      browser_image_check: Any) -> None:
    export = tmp_path / "export"
    assert main(["export", str(tiny_run), "--out", str(export)]) == 0
    out = tmp_path / "cmp"
    assert main(["compare", str(tiny_run), "--public", f"mine={export}", "--fractions", "0.1", "1",
                 "--finetune", "last_blocks", "--finetune-epochs", "1", "--finetune-min-steps", "3",
                 "--out", str(out), "--device", "cpu",
                 "eval.max_train_samples=150", "eval.max_test_samples=60", "eval.probe_max_iter=30"]) == 0
    result = json.loads((out / "compare.json").read_text())
    kinds = [r["kind"] for r in result["rows"]]
    assert kinds == ["raw", "random init", "ssl", "public"]
    ssl, public = result["rows"][2]["cells"], result["rows"][3]["cells"]
    assert ssl["knn"]["columns"] == public["knn"]["columns"]
    assert ssl["linear_probe"]["score"]["mean"] == pytest.approx(public["linear_probe"]["score"]["mean"])
    assert "'mine' is within 0.0 points" in result["verdict"]
    assert set(ssl["label_efficiency"]["columns"]) == {"10% labels", "100% labels"}
    assert "finetune last_blocks" in ssl and "finetune last_blocks" not in result["rows"][0]["cells"]
    assert "**Verdict:**" in (out / "compare.md").read_text()
    assert (out / "figures" / "label_efficiency.png").is_file() and (out / "compare.html").is_file()
    # A run directory holding `compare/` (the default --out) shows the decision table in its report.
    import shutil

    from omnissl.report import write_report

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(tiny_run / "metrics.jsonl", run / "metrics.jsonl")
    shutil.copytree(out, run / "compare")
    page = write_report(run, embed=False).read_text()
    assert result["verdict"] in page.replace("&#x27;", "'") and "decision table" in page
    assert browser_image_check(run / "report.html") == (4, 4)


def test_verdict_when_the_public_backbone_is_clearly_better() -> None:
    rows = [_row("raw", "raw", 0.60), _row("ssl", "ssl", 0.46), _row("pub", "public", 0.84)]
    assert "public backbone 'pub' is 38.0 points above the best SSL run 'ssl'" in verdict(rows)
