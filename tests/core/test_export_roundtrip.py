"""``omnissl export`` round-trips through the libraries the backbones came from: an HF-backed encoder loads back
with plain ``AutoModel`` + ``AutoTokenizer`` / ``AutoImageProcessor`` / ``AutoFeatureExtractor`` to the same
embeddings, a timm one with ``timm.create_model(..., pretrained_cfg_overlay=...)``, a torchvision one with
``load_state_dict``; every export folder has a README saying how, and which run made it.

Before issue 21 the text export wrote no tokenizer files and ``AutoTokenizer.from_pretrained`` on it "succeeded"
with a 5-token vocabulary, so every word became ``[UNK]``: the first test pins that down."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from omnissl.core.config import Component, load_recipe
from omnissl.core.instantiate import build_component
from omnissl.core.registry import ENCODERS
from omnissl.train.assemble import assemble
from omnissl.train.runner import Trainer
from omnissl.workflows.export import export_encoder, export_run, load_exported

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[2]
ONE_STEP = ["train.steps=1", "train.batch_size=4", "train.knn_every=0", "train.max_minutes=null",
            "train.max_cpu_minutes=null", "train.log_every=1", "train.num_workers=0"]


def _train(recipe: Path, overrides: list[str], run: Path, data_root: Path) -> Path:
    Trainer(assemble(load_recipe(recipe, [*ONE_STEP, *overrides]), root=data_root), run).fit()
    return run


def test_text_export_carries_its_tokenizer_and_matches_plain_transformers(tmp_path: Path, data_root: Path) -> None:
    from transformers import AutoModel, AutoTokenizer

    run = _train(ROOT / "recipes" / "text" / "simcse_minilm_continue.yaml", ["data.max_length=32"],
                 tmp_path / "run", data_root)
    (config_path,) = export_run(run, tmp_path / "out", data_root=data_root)
    folder = tmp_path / "out" / "hf_model"
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    assert len(tokenizer) == 30522 and "[UNK]" not in tokenizer.tokenize("the movie was surprisingly good")
    texts = ["the movie was surprisingly good", "stocks fell sharply on monday after the report"]
    batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    model = AutoModel.from_pretrained(str(folder)).eval()
    encoder = load_exported(tmp_path / "out").eval()
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        plain = (hidden * mask).sum(1) / mask.sum(1)
        ours = encoder({"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}).pooled
    torch.testing.assert_close(ours, plain, atol=1e-5, rtol=1e-5)
    readme = (tmp_path / "out" / "README.md").read_text()
    assert str(run.resolve()) in readme and "AutoTokenizer.from_pretrained('hf_model')" in readme
    assert json.loads(config_path.read_text())["native_library"] == "transformers"


def test_timm_run_exports_a_folder_plain_timm_loads(tmp_path: Path, data_root: Path) -> None:
    import timm

    torch.manual_seed(0)
    weights = tmp_path / "test_resnet.pth"
    torch.save(timm.create_model("test_resnet").state_dict(), weights)
    run = _train(ROOT / "recipes" / "image" / "simclr_timm_continue.yaml",
                 ["encoder.model=test_resnet", f"encoder.weights={weights}", "objective.hidden_dim=32"],
                 tmp_path / "run", data_root)
    export_run(run, tmp_path / "out", data_root=data_root)
    file = tmp_path / "out" / "timm_model" / "model.safetensors"
    plain = timm.create_model("test_resnet", pretrained=True, num_classes=0,
                              pretrained_cfg_overlay={"file": str(file)}).eval()
    local = timm.create_model(f"local-dir:{tmp_path / 'out' / 'timm_model'}", pretrained=True).eval()
    encoder = load_exported(tmp_path / "out").eval()
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    mean = torch.tensor(plain.pretrained_cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(plain.pretrained_cfg["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        pixels = (images.float() / 255 - mean) / std
        ours = encoder(images).pooled
        torch.testing.assert_close(ours, plain(pixels), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours, local(pixels), atol=1e-5, rtol=1e-5)
        before = timm.create_model("test_resnet", num_classes=0)
        before.load_state_dict({k: v for k, v in torch.load(weights, weights_only=True).items()
                                if not k.startswith("fc.")})
        assert not torch.allclose(ours, before.eval()(pixels))  # the exported weights are the trained ones
    assert "pretrained_cfg_overlay" in (tmp_path / "out" / "README.md").read_text()


def test_hf_vision_export_loads_with_auto_image_processor(tmp_path: Path) -> None:
    from transformers import AutoImageProcessor, AutoModel

    torch.manual_seed(0)
    spec = Component(name="hf_vision", architecture="dinov2", image_size=32, patch_size=8, dim=32, depth=1, heads=2,
                     pool="mean")
    encoder = build_component(ENCODERS, spec, "encoder", {"in_channels": 3}).eval()
    export_encoder(encoder, spec, {}, tmp_path / "out", plugins=["image"])
    folder = tmp_path / "out" / "hf_model"
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        inputs = AutoImageProcessor.from_pretrained(str(folder))(images=list(images), return_tensors="pt")
        plain = AutoModel.from_pretrained(str(folder)).eval()(**inputs).last_hidden_state[:, 1:].mean(1)
        torch.testing.assert_close(encoder(images).pooled, plain, atol=1e-5, rtol=1e-5)
    assert "AutoImageProcessor" in (tmp_path / "out" / "README.md").read_text()


def test_hf_audio_export_loads_with_auto_feature_extractor(tmp_path: Path) -> None:
    from transformers import AutoFeatureExtractor, AutoModel

    torch.manual_seed(0)
    spec = Component(name="hf_audio", architecture="hubert", dim=32, depth=1, heads=2)
    encoder = build_component(ENCODERS, spec, "encoder", {"sample_rate": 16000}).eval()
    export_encoder(encoder, spec, {}, tmp_path / "out", plugins=["speech"])
    folder = tmp_path / "out" / "hf_model"
    wave = 0.3 * torch.randn(1, 8000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        inputs = AutoFeatureExtractor.from_pretrained(str(folder))([wave[0].numpy()], sampling_rate=16000,
                                                                   return_tensors="pt")
        plain = AutoModel.from_pretrained(str(folder)).eval()(**inputs).last_hidden_state.mean(1)
        ours = encoder({"wave": wave, "padding_mask": torch.zeros_like(wave, dtype=torch.bool)}).pooled
    torch.testing.assert_close(ours, plain, atol=1e-5, rtol=1e-5)


def test_torchvision_export_loads_with_load_state_dict(tmp_path: Path) -> None:
    import torchvision
    from safetensors.torch import load_file

    torch.manual_seed(0)
    spec = Component(name="torchvision_model", model="mobilenet_v3_small", resize=32)
    encoder = build_component(ENCODERS, spec, "encoder", {}).eval()
    export_encoder(encoder, spec, {}, tmp_path / "out", plugins=["image"])
    meta = json.loads((tmp_path / "out" / "torchvision_model" / "torchvision.json").read_text())
    model = torchvision.models.get_model(meta["model"])
    model.classifier[3] = torch.nn.Identity()  # meta["removed_classifier"] == "classifier.3"
    model.load_state_dict(load_file(str(tmp_path / "out" / "torchvision_model" / "model.safetensors")))
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    mean, std = torch.tensor(meta["input"]["mean"]).view(1, 3, 1, 1), torch.tensor(meta["input"]["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(encoder(images).pooled, model.eval()((images.float() / 255 - mean) / std))
    assert meta["removed_classifier"] == "classifier.3"
    assert "setattr(model.get_submodule('classifier'), '3'" not in (tmp_path / "out" / "README.md").read_text()
