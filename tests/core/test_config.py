from __future__ import annotations

from pathlib import Path

import pytest

from omnissl.train.assemble import assemble
from omnissl.core.config import apply_overrides, load_recipe, recipe_from_dict
from omnissl.core.errors import ConfigError

BASE = {
    "name": "t",
    "data": {"name": "cifar10"},
    "encoder": {"name": "resnet10", "width": 8},
    "objective": {"name": "simclr"},
}


def test_unknown_top_level_key_is_named_with_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"trian: unknown key \(did you mean 'train'\?\)"):
        recipe_from_dict({**BASE, "trian": {}})


def test_unknown_nested_key_has_its_path() -> None:
    with pytest.raises(ConfigError, match=r"train\.lrr: unknown key \(did you mean 'lr'\?\)"):
        recipe_from_dict({**BASE, "train": {"lrr": 0.1}})


def test_wrong_type_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"train\.steps"):
        recipe_from_dict({**BASE, "train": {"steps": "many"}})


def test_component_parameter_typo_is_caught_at_build() -> None:
    recipe = recipe_from_dict({**BASE, "objective": {"name": "simclr", "temprature": 0.1}})
    with pytest.raises(ConfigError, match=r"objective\.temprature: unknown parameter .*did you mean 'temperature'"):
        assemble(recipe, synthetic=8)


def test_component_parameter_type_is_checked() -> None:
    recipe = recipe_from_dict({**BASE, "encoder": {"name": "resnet10", "width": "wide"}})
    with pytest.raises(ConfigError, match=r"encoder\.width"):
        assemble(recipe, synthetic=8)


def test_unknown_component_name_is_a_config_error_with_path() -> None:
    recipe = recipe_from_dict({**BASE, "encoder": {"name": "resnet19"}})
    with pytest.raises(ConfigError, match=r"encoder\.name: unknown encoder 'resnet19'"):
        assemble(recipe, synthetic=8)


def test_overrides_go_through_the_same_validation() -> None:
    recipe = recipe_from_dict(BASE, overrides=["train.steps=7", "objective.temperature=0.3"])
    assert recipe.train.steps == 7 and recipe.objective.params["temperature"] == 0.3
    with pytest.raises(ConfigError, match=r"train\.steps"):
        recipe_from_dict(BASE, overrides=["train.steps=-1"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        recipe_from_dict(BASE, overrides=["train.steps"])


def test_override_into_list_by_index() -> None:
    raw = {**BASE, "augment": {"global": {"ops": [{"name": "horizontal_flip", "p": 0.5}]}}}
    changed = apply_overrides(raw, ["augment.global.ops.0.p=0.1"])
    assert changed["augment"]["global"]["ops"][0]["p"] == 0.1
    with pytest.raises(ConfigError, match="not an index"):
        apply_overrides(raw, ["augment.global.ops.3.p=0.1"])


def test_variant_applies_its_overrides() -> None:
    raw = {**BASE, "variants": {"gpu": {"train.batch_size": 1024}}}
    assert recipe_from_dict(raw, variant="gpu").train.batch_size == 1024
    with pytest.raises(ConfigError, match="no such variant"):
        recipe_from_dict(raw, variant="tpu")


def test_encoder_and_towers_are_exclusive() -> None:
    with pytest.raises(ConfigError, match="one form"):
        recipe_from_dict({**BASE, "towers": {"a": {"encoder": {"name": "vit"}}}})


def test_missing_recipe_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_recipe(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_recipe(bad)


def test_yaml_cannot_construct_python_objects(tmp_path: Path) -> None:
    evil = tmp_path / "evil.yaml"
    evil.write_text("name: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError):
        load_recipe(evil)


def test_missing_plugin_is_reported() -> None:
    recipe = recipe_from_dict({**BASE, "plugins": ["image", "hologram"]})
    with pytest.raises(ConfigError, match="hologram not installed"):
        assemble(recipe, synthetic=8)


def test_incompatible_encoder_and_objective_is_a_clear_error() -> None:
    from omnissl.objectives.base import require_output
    from omnissl.core.registry import ENCODERS
    from omnissl.core.errors import IncompatibleError

    cnn = ENCODERS.get("resnet10").builder()
    with pytest.raises(IncompatibleError, match="needs tokens outputs"):
        require_output(cnn, "tokens", "mae")


def test_random_init_baseline_asks_pretrained_builders_for_random_weights() -> None:
    from omnissl.train.assemble import build_data, random_init_encoders
    from omnissl.core.registry import ENCODERS

    seen = []

    @ENCODERS.register("_probe_pretrained", modality="image", description="test-only")
    def _probe(*, pretrained: bool = True, in_channels: int = 3):  # noqa: ANN202
        seen.append(pretrained)
        return ENCODERS.get("resnet10").builder(width=4, in_channels=in_channels)

    try:
        recipe = recipe_from_dict({**BASE, "encoder": {"name": "_probe_pretrained"}})
        random_init_encoders(recipe, build_data(recipe, synthetic=4), seed=1)
        assert seen == [False]
    finally:
        ENCODERS.unregister("_probe_pretrained")
