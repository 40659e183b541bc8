"""One tower model: every recipe has ``towers``; Assembled answers per tower for one, two or three towers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from omnissl.augment.policy import build_policy
from omnissl.core.config import dump_recipe, load_recipe, load_yaml_text, recipe_from_dict
from omnissl.core.errors import ConfigError
from omnissl.core.types import ObjectiveOutput, ViewSet
from omnissl.objectives.base import PairedObjective
from omnissl.train.assemble import Assembled, assemble, build_data, build_encoders, tower_input, tower_spec
from omnissl.workflows.session import dry_run

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "recipes" / "image" / "simclr_digits.yaml"
TINY = ["encoder.width=4", "objective.hidden_dim=16", "objective.projection_dim=8"]
ENCODER = {"name": "resnet10", "width": 4, "cifar_stem": True}
CROP = {"global": {"ops": [{"name": "random_resized_crop", "size": 16}]}}


def test_short_form_is_the_main_tower_and_dumps_back_as_written() -> None:
    recipe = load_recipe(DIGITS)
    assert list(recipe.towers) == ["main"] and recipe.short_form
    assert recipe.encoder == recipe.towers["main"].encoder and recipe.tower_key("main", "encoder") == "encoder"
    text = dump_recipe(recipe)
    assert "towers" not in text and text.index("encoder:") < text.index("objective:")
    again = recipe_from_dict(load_yaml_text(text, source="dump"))
    assert again == recipe and again.short_form


def test_errors_name_the_keys_the_recipe_wrote() -> None:
    raw = {"name": "x", "data": {"name": "digits"}, "encoder": ENCODER, "objective": {"name": "simclr"},
           "augment": {"global": {"cont": 2}}}
    with pytest.raises(ConfigError, match=r"recipe: augment\.global\.cont: unknown key \(did you mean 'count'\?\)"):
        recipe_from_dict(raw)
    long = {**{k: v for k, v in raw.items() if k not in ("encoder", "augment")},
            "towers": {"img": {"encoder": ENCODER, "augment": {"globl": {}}}}}
    with pytest.raises(ConfigError, match=r"towers\.img\.augment\.globl: unknown key \(did you mean 'global'\?\)"):
        recipe_from_dict(long)
    with pytest.raises(ConfigError, match="tower name"):
        recipe_from_dict({**long, "towers": {"a/b": {"encoder": ENCODER}}})


def test_a_single_tower_written_long_form_trains_under_its_own_name() -> None:
    raw = {"name": "x", "plugins": ["image"], "data": {"name": "digits", "upscale": 16},
           "towers": {"digits": {"encoder": ENCODER, "augment": CROP}},
           "objective": {"name": "simclr", "hidden_dim": 16, "projection_dim": 8}}
    assembled = assemble(recipe_from_dict(raw), synthetic=8)
    assert assembled.tower_names == ["digits"] and list(assembled.encoders) == ["digits"]
    assert not assembled.recipe.short_form and assembled.recipe.tower_key("digits", "encoder") == "towers.digits.encoder"
    x = torch.zeros(3, 1, 16, 16, dtype=torch.uint8)
    assert assembled.tower_input(x, "digits") is x and assembled.selector("digits")(x) is x
    assert assembled.batch_size(x) == 3 and set(assembled.views(x)) == {"digits"}
    assert torch.isfinite(torch.tensor(dry_run(assembled)))
    with pytest.raises(ConfigError, match="tower 'main': the recipe has towers digits"):
        assembled.tower_input(x, "main")


def test_paired_recipe_gives_each_tower_its_part_of_the_batch() -> None:
    recipe = load_recipe(ROOT / "recipes" / "multimodal" / "clip_image_audio.yaml", ["train.batch_size=4"])
    assembled = assemble(recipe, synthetic=8)
    x = {"image": torch.zeros(2, 1, 28, 28), "audio": torch.zeros(2, 800)}
    assert [assembled.tower_input(x, t) is x[t] for t in assembled.tower_names] == [True, True]
    assert assembled.batch_size(x) == 2 and assembled.input_spec("image")["in_channels"] == 1
    assert tower_input(recipe, x, "audio") is x["audio"]


class _ThreeTowers(PairedObjective):
    """A toy objective binding three modalities: each tower's pooled features pulled towards the others'."""

    def forward(self, views: dict[str, ViewSet]) -> ObjectiveOutput:  # type: ignore[override]
        pooled = [self.encoders[n](views[n].global_views[0]).pooled.mean(dim=1) for n in self.encoders]
        loss = sum((a - b).pow(2).mean() for i, a in enumerate(pooled) for b in pooled[i + 1:])
        return ObjectiveOutput(loss=loss, logs={})  # type: ignore[arg-type]


def test_three_towers_need_no_new_code() -> None:
    source = {"name": "digits", "upscale": 16}
    raw: dict[str, Any] = {
        "name": "three", "plugins": ["image"],
        "data": {"name": "paired", "sources": {"a": source, "b": source, "c": source}},
        "towers": {name: {"encoder": ENCODER, "augment": CROP} for name in "abc"},
        "objective": {"name": "clip"}}
    recipe = recipe_from_dict(raw)
    bundle = build_data(recipe, synthetic=8)
    encoders = build_encoders(recipe, bundle)
    policies = {n: build_policy(t.augment, path=recipe.tower_key(n, "augment"),
                                context=tower_spec(recipe, bundle.input_spec, n)) for n, t in recipe.towers.items()}
    assembled = Assembled(recipe=recipe, bundle=bundle, objective=_ThreeTowers(encoders), policies=policies)
    assert assembled.tower_names == ["a", "b", "c"] and list(assembled.encoders) == ["a", "b", "c"]
    loss = dry_run(assembled)
    assert loss == loss and loss >= 0
    with pytest.raises(ConfigError, match="pairs exactly two towers"):
        assemble(recipe, synthetic=8)  # CLIP itself is a two-tower method, and says so


def test_a_paired_run_embeds_each_tower(tmp_path: Path, data_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    from omnissl.cli.main import main
    from omnissl.train.runner import Trainer

    keys = ["towers.image.encoder.width=4", "towers.audio.encoder.dim=16", "towers.audio.encoder.depth=1",
            "objective.embed_dim=8", "train.steps=1", "train.batch_size=8", "train.device=cpu",
            "train.checkpoint_minutes=null", "eval.max_train_samples=16", "eval.max_test_samples=16"]
    recipe = load_recipe(ROOT / "recipes" / "multimodal" / "clip_image_audio.yaml", keys)
    Trainer(assemble(recipe, root=data_root), tmp_path / "run").fit()
    assert main(["embed", str(tmp_path / "run"), "--out", str(tmp_path / "x.npy"), "--split", "test"]) != 0
    assert "towers image, audio; choose one with --tower NAME" in capsys.readouterr().err
    widths = {}
    for tower in ("image", "audio"):
        out = tmp_path / f"{tower}.npy"
        assert main(["embed", str(tmp_path / "run"), "--tower", tower, "--out", str(out), "--split", "test",
                     "--device", "cpu", "--data-root", str(data_root)]) == 0
        features = np.load(out)
        assert features.ndim == 2 and len(features) == len(np.load(out.with_suffix(".labels.npy"))) > 0
        widths[tower] = features.shape[1]
    trained = load_trained_encoders(tmp_path / "run")
    assert widths == {name: encoder.embed_dim for name, encoder in trained.items()}


def load_trained_encoders(run: Path) -> dict[str, Any]:
    from omnissl.workflows.session import load_trained

    return load_trained(run).encoders
