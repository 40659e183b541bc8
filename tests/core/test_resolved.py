"""Self-describing runs: RUN_DIR/resolved.yaml records every builder's arguments and their sources, and
export / eval rebuild the trained encoder from it (export without the dataset)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import yaml

from omnissl.core.config import load_recipe
from omnissl.core.errors import ConfigError
from omnissl.train.assemble import assemble
from omnissl.train.resolved import FILE_NAME, explain_table, read_resolved, spec_changes
from omnissl.train.runner import Trainer
from omnissl.workflows.export import CONFIG_NAME, export_run, load_exported
from omnissl.workflows.session import load_trained

pytestmark = pytest.mark.usefixtures("one_thread")
DIGITS = Path(__file__).resolve().parents[2] / "recipes" / "image" / "simclr_digits.yaml"
TINY = ["encoder.width=4", "objective.hidden_dim=16", "objective.projection_dim=8", "train.batch_size=16",
        "train.steps=2", "train.device=cpu", "train.checkpoint_minutes=null"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("resolved") / "run"
    Trainer(assemble(load_recipe(DIGITS, TINY)), run).fit()
    return run


def test_resolved_yaml_names_every_argument_and_its_source(run_dir: Path) -> None:
    document = read_resolved(run_dir)
    assert document is not None
    components = document["components"]
    assert {"data", "encoder", "objective", "augment.global.ops[0]"} <= set(components)
    encoder = components["encoder"]
    assert encoder["name"] == "resnet10"
    assert encoder["params"]["width"] == {"value": 4, "source": "recipe"}
    assert encoder["params"]["in_channels"] == {"value": 1, "source": "input_spec"}
    assert encoder["params"]["cifar_stem"]["source"] == "recipe"
    assert all(entry["source"] in ("recipe", "input_spec", "context", "default")
               for component in components.values() for entry in component["params"].values())
    objective = components["objective"]["params"]
    assert objective["encoder"]["source"] == "context" and objective["encoder"]["plain"] is False
    assert objective["temperature"] == {"value": 0.2, "source": "recipe"}
    assert document["input_spec"]["in_channels"] == 1


def test_export_needs_no_dataset_and_records_the_same_arguments(run_dir: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import omnissl.train.assemble as assemble_module

    def no_data(*args: object, **kwargs: object) -> None:
        raise AssertionError("export built the dataset")

    monkeypatch.setattr(assemble_module, "build_data", no_data)
    [config] = export_run(run_dir, tmp_path / "export")
    params = yaml.safe_load(config.read_text())["params"]  # JSON is YAML
    assert params["in_channels"] == 1 and params["width"] == 4 and "mean" in params
    monkeypatch.undo()
    encoder = load_exported(tmp_path / "export")
    trained = load_trained(run_dir).objective.towers["main"].eval()
    x = torch.randint(0, 255, (3, 1, 16, 16), dtype=torch.uint8)
    assert torch.equal(encoder.eval()(x).pooled, trained(x).pooled)


def test_a_changed_input_spec_is_reported_and_the_encoder_is_rebuilt_as_trained(
        run_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    document = yaml.safe_load((copy / FILE_NAME).read_text())
    document["input_spec"]["mean"] = [0.25]
    (copy / FILE_NAME).write_text(yaml.safe_dump(document))
    with caplog.at_level(logging.WARNING, logger="omnissl.runs"):
        assembled = load_trained(copy)
    [note] = assembled.notes
    assert "input_spec.mean: [0.25] when trained," in note and "rebuilt as trained" in note
    assert note in caplog.text


def test_a_run_without_resolved_yaml_still_loads_with_a_note(run_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "old"
    shutil.copytree(run_dir, copy)
    (copy / FILE_NAME).unlink()
    assert "no resolved.yaml" in load_trained(copy).notes[0]
    [config] = export_run(copy, tmp_path / "export")
    assert config.name == CONFIG_NAME and yaml.safe_load(config.read_text())["params"]["in_channels"] == 1


def test_damaged_resolved_yaml_names_the_file_and_key(run_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "bad"
    shutil.copytree(run_dir, copy)
    document = yaml.safe_load((copy / FILE_NAME).read_text())
    document["components"]["encoder"]["params"]["width"]["source"] = "guess"
    (copy / FILE_NAME).write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError, match=r"resolved.yaml: components.encoder.params.width: expected value"):
        read_resolved(copy)


def test_spec_changes_and_explain_table() -> None:
    assert spec_changes({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 3}, "d": 4}) == [
        "input_spec.b.c: 2 when trained, 3 now", "input_spec.d: not published when trained, 4 now"]
    assembled = assemble(load_recipe(DIGITS, TINY), synthetic=8)
    table = explain_table(assembled.resolved).splitlines()
    assert table[0].split() == ["component", "parameter", "value", "source"]
    assert any(line.split()[:2] == ["encoder", "(resnet10)"] and line.split()[2:] == ["in_channels", "1", "input_spec"]
               for line in table)


def test_validate_explain_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    from omnissl.cli.main import main

    assert main(["validate", str(DIGITS), *TINY, "--no-estimate", "--explain"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("ok  ") and lines[1].split() == ["component", "parameter", "value", "source"]
    rows = [line.split() for line in lines[2:]]
    assert ["objective", "(simclr)", "temperature", "0.2", "recipe"] in rows
    assert ["encoder", "(resnet10)", "width", "4", "recipe"] in rows
    assert any(row[:3] == ["data", "(digits)", "seed"] and row[-1] == "context" for row in rows)
