"""Public image backbones through the user's path: a tiny random model saved the way a downloaded one is laid
out (``save_pretrained``, timm's hub folder, ``torch.save(state_dict)``), loaded by a recipe override naming the
local folder/file, giving the same embeddings as the library itself on the same pixels. Nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from omnissl.core.config import Component, load_recipe
from omnissl.core.errors import ConfigError
from omnissl.core.instantiate import build_component
from omnissl.core.registry import ENCODERS
from omnissl.train.assemble import assemble
from omnissl.workflows.session import dry_run

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[2]
TIMM_RECIPE = ROOT / "recipes" / "image" / "simclr_timm_continue.yaml"
SPEC = {"in_channels": 3, "image_size": 32, "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}


def _images(size: int = 32, count: int = 3) -> torch.Tensor:
    return torch.randint(0, 256, (count, 3, size, size), generator=torch.Generator().manual_seed(0),
                         dtype=torch.uint8)


def _hf_vision_dir(tmp_path: Path, kind: str, *, size: int = 32, patch: int = 8) -> Path:
    import transformers as tf

    torch.manual_seed(0)
    common = {"image_size": size, "patch_size": patch, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                  "intermediate_size": 64}
    model = {"vit": lambda: tf.ViTModel(tf.ViTConfig(**common)),
             "dinov2": lambda: tf.Dinov2Model(tf.Dinov2Config(**{k: v for k, v in common.items()
                                                                  if k != "intermediate_size"})),
             "vit_mae": lambda: tf.ViTMAEModel(tf.ViTMAEConfig(**common)),
             "clip": lambda: tf.CLIPVisionModel(tf.CLIPVisionConfig(**common))}[kind]()
    folder = tmp_path / kind
    model.save_pretrained(str(folder))
    processor = (tf.CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
                 if kind == "clip" else tf.ViTImageProcessor(size={"height": size, "width": size},
                                                             image_mean=[0.4, 0.5, 0.6], image_std=[0.2, 0.3, 0.25]))
    processor.save_pretrained(str(folder))
    return folder


def _build(**params: object) -> torch.nn.Module:
    return build_component(ENCODERS, Component(**params), "encoder", dict(SPEC)).eval()


@pytest.mark.parametrize("kind", ["vit", "dinov2", "vit_mae", "clip"])
def test_hf_vision_folder_gives_the_same_embedding_as_plain_transformers(tmp_path: Path, kind: str) -> None:
    import transformers as tf

    folder = _hf_vision_dir(tmp_path, kind)
    encoder = _build(name="hf_vision", path=str(folder), pool="cls")
    images = _images()
    with torch.no_grad():
        out = encoder(images)
        cls = tf.CLIPVisionModel if kind == "clip" else tf.AutoModel
        plain = cls.from_pretrained(str(folder)).eval()
        if kind == "vit_mae":
            plain.config.mask_ratio = 0.0  # as an encoder: every patch, in order (ascending noise)
        pixels = tf.AutoImageProcessor.from_pretrained(str(folder))(images=list(images), return_tensors="pt")
        extra = {"noise": torch.arange(16.0).expand(3, -1)} if kind == "vit_mae" else {}
        reference = plain(**pixels, **extra)
    expected = reference.pooler_output if kind == "clip" else reference.last_hidden_state[:, 0]
    torch.testing.assert_close(out.pooled, expected, atol=2e-4, rtol=1e-4)
    assert out.tokens is not None and out.tokens.shape == (3, 16, 32)  # the 4×4 patches, class token removed
    torch.testing.assert_close(out.tokens, reference.last_hidden_state[:, 1:], atol=2e-4, rtol=1e-4)


def test_hf_vision_resizes_inside_and_the_random_twin_differs(tmp_path: Path) -> None:
    folder = _hf_vision_dir(tmp_path, "dinov2", size=32, patch=8)
    with torch.no_grad():
        trained = _build(name="hf_vision", path=str(folder), pool="mean")
        small = trained(_images(size=16))  # resized 16 → 32 inside (the processor's size)
        native = _build(name="hf_vision", path=str(folder), resize=16)(_images(size=16))  # positions interpolated
        twin = _build(name="hf_vision", path=str(folder), pool="mean", pretrained=False)(_images(size=16))
    assert small.pooled.shape == (3, 32) and small.tokens.shape == (3, 16, 32)
    assert native.tokens.shape == (3, 4, 32)
    assert not torch.allclose(small.pooled, twin.pooled)


def test_hf_vision_refuses_a_folder_without_processor_or_of_the_wrong_kind(tmp_path: Path) -> None:
    import transformers as tf

    folder = _hf_vision_dir(tmp_path, "vit")
    (folder / "preprocessor_config.json").unlink()
    with pytest.raises(ConfigError, match="preprocessor_config.json"):
        _build(name="hf_vision", path=str(folder))
    bert = tmp_path / "bert"
    tf.BertModel(tf.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=64)).save_pretrained(str(bert))
    with pytest.raises(ConfigError, match="'bert' model"):
        _build(name="hf_vision", path=str(bert))
    with pytest.raises(ConfigError, match="hub: true"):
        _build(name="hf_vision", path="facebook/dinov2-small")


def test_an_ssl_recipe_continues_from_a_local_hf_vit(tmp_path: Path) -> None:
    folder = _hf_vision_dir(tmp_path, "vit")
    recipe = load_recipe(ROOT / "recipes" / "image" / "dino.yaml",
                         [f"encoder={{name: hf_vision, path: {folder}, pool: cls}}", "train.channels_last=false",
                          "objective.out_dim=32", "objective.hidden_dim=32", "objective.bottleneck_dim=16"])
    assembled = assemble(recipe, synthetic=16)
    before = {k: v.clone() for k, v in assembled.objective.towers["main"].model.state_dict().items()}
    reference = _build(name="hf_vision", path=str(folder)).model.state_dict()
    assert all(torch.equal(before[k], reference[k]) for k in reference)  # starts from the folder's weights
    assert torch.isfinite(torch.tensor(dry_run(assembled)))


def _timm_files(tmp_path: Path) -> tuple[Path, Path]:
    import timm
    from timm.models import save_for_hf

    torch.manual_seed(0)
    model = timm.create_model("test_resnet")  # with its classifier, as a downloaded checkpoint has
    file = tmp_path / "test_resnet.pth"
    torch.save(model.state_dict(), file)
    save_for_hf(model, str(tmp_path / "timm_folder"), safe_serialization=True)
    return file, tmp_path / "timm_folder"


def test_timm_weights_from_a_file_or_folder_through_the_recipe(tmp_path: Path) -> None:
    import timm

    file, folder = _timm_files(tmp_path)
    plain = timm.create_model("test_resnet", num_classes=0)
    plain.load_state_dict({k: v for k, v in torch.load(file, weights_only=True).items()
                           if not k.startswith("fc.")})
    images = _images()
    mean = torch.tensor(plain.pretrained_cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(plain.pretrained_cfg["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = plain.eval()((images.float() / 255 - mean) / std)
    for weights in (file, folder):
        recipe = load_recipe(TIMM_RECIPE, ["encoder.model=test_resnet", f"encoder.weights={weights}",
                                           "objective.hidden_dim=32"])
        assembled = assemble(recipe, synthetic=16)
        encoder = assembled.objective.towers["main"].eval()
        with torch.no_grad():
            out = encoder(images)
        torch.testing.assert_close(out.pooled, expected, atol=1e-5, rtol=1e-5)
        assert out.tokens is not None and out.tokens.shape[-1] == encoder.embed_dim == 96
        assert torch.isfinite(torch.tensor(dry_run(assembled)))


def test_timm_refuses_pickles_unknown_names_and_mismatched_folders(tmp_path: Path) -> None:
    _, folder = _timm_files(tmp_path)
    evil = tmp_path / "evil.pth"
    torch.save({"weights": object()}, evil)
    with pytest.raises(ConfigError, match="evil.pth"):
        _build(name="timm", model="test_resnet", weights=str(evil))
    with pytest.raises(ConfigError, match="not a timm architecture"):
        _build(name="timm", model="resnett18")
    with pytest.raises(ConfigError, match="holds a 'test_resnet'"):
        _build(name="timm", model="resnet18", weights=str(folder))
    with pytest.raises(ConfigError, match="neither a local"):
        _build(name="timm", model="test_resnet", weights=str(tmp_path / "missing.pth"))


def test_torchvision_state_dict_file_gives_the_plain_models_features(tmp_path: Path) -> None:
    import torchvision

    torch.manual_seed(0)
    plain = torchvision.models.get_model("mobilenet_v3_small").eval()
    file = tmp_path / "mnv3.pth"
    torch.save(plain.state_dict(), file)
    encoder = _build(name="torchvision_model", model="mobilenet_v3_small", weights=str(file), resize=32)
    plain.classifier[3] = torch.nn.Identity()
    images = _images()
    mean = torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1)
    std = torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(encoder(images).pooled, plain((images.float() / 255 - mean) / std))
    assert encoder.embed_dim == 1024 and encoder.head == "classifier.3"
    with pytest.raises(ConfigError, match="does not load into torchvision 'resnet18'"):
        _build(name="torchvision_model", model="resnet18", weights=str(file))
    with pytest.raises(ConfigError, match="no nn.Linear"):
        _build(name="torchvision_model", model="squeezenet1_0")
