"""Recipe hardening (issue 17): YAML bombs and duplicates (F8, F19), context-only data keys and the outside-root
opt-in (F15), strict values, builder failures, variants and resume differences (F19), ``train --checkpoint`` (F20)."""

from __future__ import annotations

import inspect
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omnissl.train.assemble import assemble
from omnissl.cli.main import main
from omnissl.core.config import load_recipe, load_yaml_text, recipe_differences, recipe_from_dict
from omnissl.core.errors import ConfigError
from omnissl.core.paths import ALLOW_OUTSIDE_ENV, outside_paths_allowed

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "recipes" / "image" / "simclr_digits.yaml"
BASE = {"name": "t", "data": {"name": "cifar10"}, "encoder": {"name": "resnet10", "width": 8},
        "objective": {"name": "simclr"}}
BOMB = """variants:
  bomb:
    x: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]
    y0: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
    y1: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
    y2: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
    y3: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
    y4: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
    y5: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
    y6: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
    y7: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def _recipe_file(tmp_path: Path, extra: str = "", name: str = "r.yaml") -> Path:
    path = tmp_path / name
    path.write_text(DEMO.read_text(encoding="utf-8") + extra, encoding="utf-8")
    return path


# ---------------------------------------------------------------- F8: the shared YAML loader


def test_alias_bomb_in_variants_is_refused_quickly_naming_file_and_line(tmp_path: Path) -> None:
    path = _recipe_file(tmp_path, BOMB)
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"r\.yaml: line \d+: YAML alias '\*a'") as caught:
        load_recipe(path)
    assert time.perf_counter() - start < 5 and "\n" not in str(caught.value)


def test_oversized_and_overdeep_documents_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"big\.yaml: .*larger than"):
        load_yaml_text("a: " + "x" * (2 << 20), source="big.yaml")
    with pytest.raises(ConfigError, match=r"deep\.yaml: .*nested"):
        load_yaml_text("[" * 20000 + "]" * 20000, source="deep.yaml")


def test_override_values_go_through_the_same_loader() -> None:
    with pytest.raises(ConfigError, match=r"override 'train\.steps=\*a'.*alias"):
        recipe_from_dict(BASE, overrides=["train.steps=*a"])


# ---------------------------------------------------------------- F19: file and YAML-level checks


@pytest.mark.parametrize("payload", [bytes(range(256)) * 4, "name: t\n".encode("utf-16")], ids=["binary", "utf16"])
def test_binary_or_utf16_recipe_is_a_config_error_naming_the_file(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "odd.yaml"
    path.write_bytes(payload)
    with pytest.raises(ConfigError, match=r"odd\.yaml: not a UTF-8 text file"):
        load_recipe(path)


@pytest.mark.parametrize(("extra", "key"), [("train: {steps: 3}\n", "train"),
                                             ("eval:\n  knn_k: [5]\n  knn_k: [7]\n", "eval.knn_k")])
def test_duplicate_keys_are_refused_naming_the_key_path(tmp_path: Path, extra: str, key: str) -> None:
    text = DEMO.read_text(encoding="utf-8").replace("eval:\n  knn_k: [20]\n", "") + extra
    path = tmp_path / "dup.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"dup\.yaml: line \d+: duplicate key '{key}'"):
        load_recipe(path)


def test_nested_duplicate_inside_variants_is_named() -> None:
    with pytest.raises(ConfigError, match=r"duplicate key 'variants\.gpu\.train\.steps'"):
        load_yaml_text("variants:\n  gpu:\n    train.steps: 1\n    train.steps: 2\n", source="v.yaml")


@pytest.mark.parametrize("override", ["train.steps=yes", "train.steps=true", "train.steps=010"])
def test_steps_must_be_a_real_integer(override: str) -> None:
    with pytest.raises(ConfigError, match=r"train\.steps|octal"):
        recipe_from_dict(BASE, overrides=[override])


def test_yaml_octal_is_refused_with_an_explanation(tmp_path: Path) -> None:
    path = _recipe_file(tmp_path, "", "octal.yaml")
    path.write_text(path.read_text(encoding="utf-8").replace("steps: 400", "steps: 010"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"octal\.yaml: line \d+: '010' is a YAML 1\.1 octal number \(= 8\)"):
        load_recipe(path)
    assert recipe_from_dict(BASE, overrides=["train.steps=10"]).train.steps == 10


def test_bool_is_not_an_integer_in_a_builder_parameter() -> None:
    recipe = recipe_from_dict({**BASE, "encoder": {"name": "resnet10", "width": True}})
    with pytest.raises(ConfigError, match=r"encoder\.width: .*bool"):
        assemble(recipe, synthetic=8)


@pytest.mark.parametrize("k", [0, -5])
def test_knn_k_entries_must_be_positive(k: int) -> None:
    with pytest.raises(ConfigError, match=r"eval\.knn_k\.0"):
        recipe_from_dict({**BASE, "eval": {"knn_k": [k]}})


def test_train_device_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"train\.device: 'tpu:7' is not a device"):
        recipe_from_dict(BASE, overrides=["train.device=tpu:7"])
    for device in ("auto", "cpu", "cuda", "cuda:1", "mps"):
        assert recipe_from_dict(BASE, overrides=[f"train.device={device}"]).train.device == device


def test_a_builder_crash_is_a_config_error_naming_the_component() -> None:
    recipe = recipe_from_dict({**BASE, "encoder": {"name": "resnet10", "width": -4}})
    with pytest.raises(ConfigError, match=r"^encoder: building 'resnet10' failed: RuntimeError: .*negative"):
        assemble(recipe, synthetic=8)


@pytest.mark.parametrize(("variant", "where"), [("{train.bach_size: 8}", r"variants\.gpu\.train\.bach_size"),
                                                ("{encoder.widht: 8}", r"variants\.gpu\.encoder\.widht")])
def test_validate_checks_every_variant(tmp_path: Path, variant: str, where: str) -> None:
    from omnissl.workflows.session import validate

    path = _recipe_file(tmp_path, f"variants:\n  fine: {{train.batch_size: 8}}\n  gpu: {variant}\n")
    with pytest.raises(ConfigError, match=where):
        validate(path)


# ---------------------------------------------------------------- F15 / F19: context-only data keys


@pytest.mark.parametrize("key", ["synthetic", "data_root", "seed"])
def test_context_only_data_keys_are_refused(key: str) -> None:
    with pytest.raises(ConfigError, match=rf"data\.{key}: not a recipe key"):
        recipe_from_dict(BASE, overrides=[f"data.{key}=1"])
    paired = {**BASE, "data": {"name": "paired", "sources": {"a": {"name": "digits", key: 1}}}}
    with pytest.raises(ConfigError, match=rf"data\.sources\.a\.{key}: not a recipe key"):
        recipe_from_dict(paired)


def test_train_refuses_synthetic_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(DEMO), "--run-dir", str(tmp_path / "run"), "data.synthetic=64"]) == 2
    assert "data.synthetic: not a recipe key" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


VERBS = {"train": ("omnissl.cli.train.run", [str(DEMO)]), "validate": ("omnissl.cli.validate.run", [str(DEMO)]),
         "eval": ("omnissl.cli.eval.run", ["RUN"]), "compare": ("omnissl.cli.compare.run", ["RUN"]),
         "report": ("omnissl.cli.report.run", ["RUN"]),
         "export": ("omnissl.cli.export.run", ["RUN"]),
         "embed": ("omnissl.cli.embed.run", ["RUN", "--out", "x.npy"])}


@pytest.mark.parametrize("verb", list(VERBS))
def test_every_data_reading_verb_has_the_outside_root_opt_in(verb: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ALLOW_OUTSIDE_ENV, raising=False)
    target, positional = VERBS[verb]
    seen = []
    monkeypatch.setattr(target, lambda _args: seen.append(outside_paths_allowed()) or 0)
    assert main([verb, *positional]) == 0 and main([verb, *positional, "--allow-outside-data-root"]) == 0
    assert seen == [False, True]
    assert outside_paths_allowed() is False, "the opt-in must not outlive the command"


# ---------------------------------------------------------------- resume: name the differing keys; --checkpoint


def test_recipe_differences_names_key_paths() -> None:
    a = {"train": {"lr": 0.1, "steps": 3}, "augment": {"ops": [{"p": 0.5}]}, "name": "x"}
    b = {"train": {"lr": 0.2, "steps": 3}, "augment": {"ops": [{"p": 0.1}]}, "name": "x", "extra": 1}
    assert recipe_differences(a, b) == ["augment.ops.0.p", "extra", "train.lr"]
    assert recipe_differences(a, a) == []
    assert recipe_differences({"l": [1]}, {"l": [1, 2]}) == ["l"]


def test_resume_refusal_names_the_changed_key(tmp_path: Path) -> None:
    from omnissl.core.config import dump_recipe
    from omnissl.workflows.session import check_resume_matches

    run = tmp_path / "run"
    run.mkdir()
    recipe = load_recipe(DEMO)
    (run / "recipe.yaml").write_text(dump_recipe(recipe), encoding="utf-8")
    check_resume_matches(load_recipe(DEMO, ["train.steps=9"]), run)
    with pytest.raises(ConfigError, match=r"differs from .* in: objective\.temperature, train\.lr \("):
        check_resume_matches(load_recipe(DEMO, ["train.lr=0.5", "objective.temperature=0.9"]), run)


def test_train_accepts_checkpoint_and_passes_it_to_the_trainer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               data_root: Path) -> None:
    from omnissl.train import runner

    seen: dict[str, object] = {}

    class Stop(Exception):
        pass

    def fake_init(self: object, assembled: object, run_dir: object, **kwargs: object) -> None:
        seen.update(kwargs)
        raise Stop

    fake_init.__signature__ = inspect.signature(runner.Trainer.__init__)  # type: ignore[attr-defined]
    monkeypatch.setattr(runner.Trainer, "__init__", fake_init)
    monkeypatch.setattr("omnissl.workflows.session.check_resume_matches",
                        lambda recipe, run_dir: seen.setdefault("checked", True))
    ckpt = tmp_path / "run" / "checkpoints" / "step_00000002.pt"
    with pytest.raises(Stop):
        main(["train", str(DEMO), "--run-dir", str(tmp_path / "run"), "--checkpoint", str(ckpt),
              "--data-root", str(data_root)])
    assert seen["checkpoint"] == ckpt and seen["checked"] is True and seen["resume"] is True
    # the resume hint is the command the user typed (recipe path first, then the options that must come back)
    assert str(seen["recipe_source"]).startswith(str(DEMO)), seen["recipe_source"]


_yaml_bits = st.sampled_from(["a", ": ", "- ", "[", "]", "{", "}", ",", "\n", "  ", "!!int ", "!!float ", "!!binary ",
                              "!!timestamp ", "&x ", "*x", "? ", "010", "1:30", "<<: ", "'", '"', "#", "!!set ",
                              "true", "~", "0x1f", "\t", "%YAML 1.1\n", "---\n", "!!python/name:os.system "])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_yaml_bits, max_size=25).map("".join) | st.text(max_size=60))
def test_yaml_loader_never_raises_a_foreign_exception(text: str) -> None:
    try:
        load_yaml_text(text, source="fuzz.yaml")
    except ConfigError as error:
        assert str(error).startswith("fuzz.yaml") and "\n" not in str(error)
