"""ImageBind-style binding: the loss is the mean of the per-pair CLIP/SigLIP losses with the anchor, the anchor is
validated, frozen towers get no gradient, and retrieval covers every tower pair with the untrained ones marked."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.nn import functional as F

from omnissl.core.errors import ConfigError
from omnissl.core.types import DataBundle, Encoder, EncoderOutput, ViewSet
from omnissl.eval.protocol import EvalContext, Row
from omnissl.eval.retrieval import build_retrieval, build_zero_shot
from omnissl.objectives.bind import Bind, build_bind
from omnissl.objectives.clip import CLIP, clip_loss
from omnissl.objectives.siglip import siglip_loss

ROOT = Path(__file__).resolve().parents[2]


class Tiny(Encoder):
    def __init__(self, width: int = 3, dim: int = 4) -> None:
        super().__init__()
        self.embed_dim = dim
        self.linear = torch.nn.Linear(width, dim)

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        return EncoderOutput(pooled=self.linear(x))


def towers(*names: str) -> dict[str, Encoder]:
    torch.manual_seed(0)
    return {name: Tiny() for name in names}


def views(names: tuple[str, ...], batch: int = 5, seed: int = 1) -> dict[str, ViewSet]:
    g = torch.Generator().manual_seed(seed)
    return {name: ViewSet([torch.randn(batch, 3, generator=g)]) for name in names}


def by_hand(bind: Bind, batch: dict[str, ViewSet]) -> dict[str, torch.Tensor]:
    """Each tower's projection computed outside the objective: backbone → its projection → L2 normalisation."""
    return {n: F.normalize(bind.projections[n](bind.encoders[n](batch[n].global_views[0]).pooled), dim=-1)
            for n in bind.names}


def test_clip_bind_loss_is_the_mean_of_the_anchor_pairs_clip_losses() -> None:
    names = ("image", "audio", "text")
    bind = build_bind(encoders=towers(*names), anchor="image", embed_dim=4)
    with torch.no_grad():  # distinct scales per pair, so a mix-up of pairs would show
        bind.log_scales["audio"].fill_(math.log(5.0))
        bind.log_scales["text"].fill_(math.log(12.0))
    batch = views(names)
    out = bind(batch)
    z = by_hand(bind, batch)
    audio = clip_loss(z["image"], z["audio"], log_scale=torch.tensor(math.log(5.0)))
    text = clip_loss(z["image"], z["text"], log_scale=torch.tensor(math.log(12.0)))
    assert math.isclose(out.loss.item(), (audio.item() + text.item()) / 2, rel_tol=1e-6)
    assert math.isclose(out.logs["clip/image-audio"].item(), audio.item(), rel_tol=1e-6)
    assert math.isclose(out.logs["clip/image-text"].item(), text.item(), rel_tol=1e-6)
    assert math.isclose(out.logs["logit_scale/image-text"].item(), 12.0, rel_tol=1e-5)
    # audio and text are never contrasted: other text leaves the image–audio term exactly as it was
    other_text = {**batch, "text": ViewSet([batch["text"].global_views[0].flip(0) + 1.0])}
    again = bind(other_text)
    assert torch.equal(again.logs["clip/image-audio"], out.logs["clip/image-audio"])
    assert again.logs["clip/image-text"].item() != text.item()
    assert bind.trained_pairs == [("image", "audio"), ("image", "text")] and "clip/audio-text" not in out.logs
    assert out.embeddings.shape == (5, 4)  # the anchor's pooled rows


def test_siglip_bind_uses_each_pairs_own_scale_and_bias() -> None:
    names = ("image", "audio", "text")
    bind = build_bind(encoders=towers(*names), anchor="audio", loss="siglip", embed_dim=4)
    assert math.isclose(bind.log_scales["image"].item(), math.log(10.0), rel_tol=1e-6)  # SigLIP's t' = log 10
    with torch.no_grad():
        bind.biases["text"].fill_(-3.0)
    batch = views(names)
    z = by_hand(bind, batch)
    image = siglip_loss(z["audio"], z["image"], log_scale=torch.tensor(math.log(10.0)), bias=torch.tensor(-10.0))
    text = siglip_loss(z["audio"], z["text"], log_scale=torch.tensor(math.log(10.0)), bias=torch.tensor(-3.0))
    out = bind(batch)
    assert math.isclose(out.loss.item(), (image.item() + text.item()) / 2, rel_tol=1e-6)
    assert set(out.logs) >= {"siglip/audio-image", "siglip/audio-text"}


def test_two_tower_bind_is_clip() -> None:
    bind = build_bind(encoders=towers("a", "b"), anchor="a", embed_dim=4)
    clip = CLIP(towers("a", "b"), embed_dim=4, init_temperature=0.07, frozen=[])
    clip.projections.load_state_dict(bind.projections.state_dict())
    batch = views(("a", "b"))
    assert math.isclose(bind(batch).loss.item(), clip(batch).loss.item(), rel_tol=1e-6)


def test_anchor_and_frozen_names_are_checked_against_the_towers() -> None:
    with pytest.raises(ConfigError, match=r"objective\.anchor: no tower named 'video'; towers: \['image', 'audio'"):
        build_bind(encoders=towers("image", "audio", "text"), anchor="video")
    with pytest.raises(ConfigError, match=r"objective\.frozen: no tower named \['txt'\]"):
        build_bind(encoders=towers("image", "audio", "text"), anchor="image", frozen=["txt"])
    with pytest.raises(ConfigError, match="at least two towers"):
        build_bind(encoders=towers("image"), anchor="image")


def test_recipe_with_an_unknown_anchor_fails_naming_the_towers() -> None:
    from omnissl.core.config import load_recipe
    from omnissl.train.assemble import assemble

    recipe = load_recipe(ROOT / "recipes" / "multimodal" / "bind_image_audio_text.yaml", ["objective.anchor=video"])
    with pytest.raises(ConfigError, match=r"anchor: no tower named 'video'; towers: \['image', 'audio', 'text'\]"):
        assemble(recipe, synthetic=4)


def test_no_gradient_reaches_a_frozen_tower_but_its_projection_trains() -> None:
    names = ("image", "audio", "text")
    bind = build_bind(encoders=towers(*names), anchor="image", embed_dim=4, frozen=["text"])
    bind.train()
    assert not bind.encoders["text"].training and bind.encoders["image"].training  # frozen stays in eval mode
    bind(views(names)).loss.backward()
    assert all(p.grad is None for p in bind.encoders["text"].parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n in ("image", "audio")
               for p in bind.encoders[n].parameters())
    assert bind.projections["text"].weight.grad is not None  # LiT: the locked tower's head still learns


class _Rows(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __init__(self, x: dict[str, torch.Tensor], y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"x": {n: v[i] for n, v in self.x.items()}, "y": self.y[i], "index": i}


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"x": {n: torch.stack([it["x"][n] for it in items]) for n in items[0]["x"]},
            "y": torch.stack([it["y"] for it in items]), "index": torch.tensor([it["index"] for it in items])}


def _identity_bind() -> Bind:
    """Projections = identity on the inputs, so retrieval is decided by the data alone."""
    bind = build_bind(encoders={n: Tiny(width=4, dim=4) for n in ("image", "audio", "text")}, anchor="image",
                      embed_dim=4)
    with torch.no_grad():
        for n in bind.names:
            bind.encoders[n].linear.weight.copy_(torch.eye(4))
            bind.encoders[n].linear.bias.zero_()
            bind.projections[n].weight.copy_(torch.eye(4))
    return bind


def test_retrieval_covers_every_pair_and_marks_the_pair_that_never_trained_together() -> None:
    y = torch.tensor([0, 1, 2, 3])
    audio = torch.eye(4)
    x = {"image": torch.eye(4)[[1, 0, 3, 2]], "audio": audio, "text": audio.clone()}  # text == audio row by row
    data = _Rows(x, y)
    bundle = DataBundle(train=data, test=data, collate=_collate, num_classes=4)
    ctx = EvalContext(bundle=bundle, train_set=data, test_set=data, device=torch.device("cpu"), dataset_name="toy")
    row = Row(name="bind", kind="ssl", objective=_identity_bind())
    result = build_retrieval(ks=[1]).measure(ctx, row)
    columns = result["columns"]
    directions = ["image→audio", "audio→image", "image→text", "text→image", "audio→text (emergent)",
                  "text→audio (emergent)"]
    assert [c for c in columns if c.endswith("instance R@1")] == [f"{d} instance R@1" for d in directions]
    assert columns["audio→text (emergent) instance R@1"]["mean"] == 1.0  # identical rows find each other
    assert columns["image→audio instance R@1"]["mean"] == 0.0  # swapped rows never do
    assert result["details"]["emergent"] == ["audio↔text"]
    chosen = build_retrieval(ks=[1], pairs=[["text", "audio"]]).measure(ctx, row)["columns"]
    assert list(chosen) == ["text→audio (emergent) instance R@1", "text→audio (emergent) class R@1",
                            "audio→text (emergent) instance R@1", "audio→text (emergent) class R@1"]
    zero = build_zero_shot(pairs=[["audio", "text"]]).measure(ctx, row)["columns"]
    assert list(zero) == ["zero-shot audio by text (emergent)", "zero-shot text by audio (emergent)"]
    assert zero["zero-shot audio by text (emergent)"]["mean"] == 1.0
    with pytest.raises(ConfigError, match=r"retrieval\.pairs: \['audio', 'video'\] .*towers: \['image', 'audio'"):
        build_retrieval(pairs=[["audio", "video"]]).measure(ctx, row)


def test_two_tower_retrieval_columns_are_unchanged() -> None:
    clip = CLIP(towers("image", "audio"), embed_dim=4, init_temperature=0.07, frozen=[])
    data = _Rows({"image": torch.randn(6, 3), "audio": torch.randn(6, 3)}, torch.arange(6) % 3)
    bundle = DataBundle(train=data, test=data, collate=_collate, num_classes=3)
    ctx = EvalContext(bundle=bundle, train_set=data, test_set=data, device=torch.device("cpu"), dataset_name="toy")
    columns = build_retrieval(ks=[1]).measure(ctx, Row(name="clip", kind="ssl", objective=clip))["columns"]
    assert list(columns) == ["image→audio instance R@1", "image→audio class R@1", "audio→image instance R@1",
                             "audio→image class R@1"]
    assert list(build_zero_shot().measure(ctx, Row(name="clip", kind="ssl", objective=clip))["columns"]) == [
        "zero-shot image by audio", "zero-shot audio by image"]


def test_three_sources_pair_by_label_with_the_anchor(data_root: Path) -> None:
    from omnissl.core.registry import load_plugins
    from omnissl.data.paired import paired

    load_plugins()
    spec = {"image": {"name": "mnist"}, "audio": {"name": "fsdd", "label": "digit"},
            "text": {"name": "label_captions", "class_set": "digits"}}
    bundle = paired(sources=spec, data_root=data_root, seed=0)
    for split in ("train", "test"):
        dataset = getattr(bundle, split)
        assert len(dataset) == len(dataset.sources["image"])  # every image kept, none dropped
        for name in ("audio", "text"):
            partner = dataset.partner[name]
            assert int(partner.max()) < len(dataset.sources[name])  # never crosses splits
            assert torch.equal(torch.as_tensor(dataset.sources[name].labels)[partner], dataset.labels)
    batch = bundle.collate([bundle.test[i] for i in range(3)])
    assert set(batch["x"]) == {"image", "audio", "text"} and batch["y"].shape == (3,)
