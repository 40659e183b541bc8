"""``export`` / ``embed`` never replace files without ``--overwrite`` (F16); a damaged export folder or a model that
fails to build gives one line naming the folder and file, not a traceback (F23)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from omnissl.core.instantiate import build_component
from omnissl.cli.main import main
from omnissl.core.config import Component
from omnissl.core.errors import CheckpointError, ConfigError
from omnissl.workflows.export import CONFIG_NAME, WEIGHTS_NAME, export_encoder, load_exported
from omnissl.core.registry import ENCODERS, load_plugins

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "recipes" / "image" / "simclr_digits.yaml"


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("omnissl: error: ") and "\n" not in err and "Traceback" not in err, err
    return err


# ---------------------------------------------------------------- F16


def test_export_refuses_to_replace_an_export_without_overwrite(tiny_run: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "export"
    assert main(["export", str(tiny_run), "--out", str(out)]) == 0
    (out / WEIGHTS_NAME).write_bytes(b"precious")
    assert main(["export", str(tiny_run), "--out", str(out)]) == 2
    err = _error_line(capsys)
    assert str(out) in err and "--overwrite" in err
    assert (out / WEIGHTS_NAME).read_bytes() == b"precious"
    assert main(["export", str(tiny_run), "--out", str(out), "--overwrite"]) == 0
    assert (out / WEIGHTS_NAME).read_bytes() != b"precious"


def test_export_out_that_is_a_file_is_one_line(tiny_run: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "afile"
    target.write_text("keep")
    assert main(["export", str(tiny_run), "--out", str(target), "--overwrite"]) == 2
    assert "is a file" in _error_line(capsys) and target.read_text() == "keep"


def test_export_and_embed_never_write_into_the_data_root(tiny_run: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"  # digits ships with scikit-learn: any folder works as its data root
    root.mkdir()
    assert main(["export", str(tiny_run), "--out", str(root / "exp"), "--data-root", str(root)]) == 2
    assert "data root" in _error_line(capsys)
    assert main(["embed", str(tiny_run), "--out", str(root / "e.npy"), "--data-root", str(root)]) == 2
    assert "data root" in _error_line(capsys)
    assert list(root.iterdir()) == []


def test_embed_refuses_to_replace_any_of_its_files(tiny_run: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "precious.npy"
    sidecar = tmp_path / "precious.labels.npy"
    sidecar.write_bytes(b"precious")
    command = ["embed", str(tiny_run), "--split", "test", "--out", str(out), "--device", "cpu"]
    assert main(command) == 2
    err = _error_line(capsys)
    assert str(sidecar) in err and "--overwrite" in err
    assert sidecar.read_bytes() == b"precious" and not out.exists()
    assert main([*command, "--overwrite"]) == 0
    assert out.is_file() and sidecar.read_bytes() != b"precious"
    assert main(["embed", str(tiny_run), "--out", str(tmp_path), "--overwrite"]) == 2
    assert "is a folder" in _error_line(capsys)


# ---------------------------------------------------------------- F23


@pytest.fixture()
def small_export(tmp_path: Path) -> Path:
    load_plugins()
    spec = Component(name="resnet10", width=4, in_channels=1)
    export_encoder(build_component(ENCODERS, spec, "encoder"), spec, {}, tmp_path / "exp", plugins=["image"])
    return tmp_path / "exp"


def test_export_folder_without_weights_names_folder_and_file(small_export: Path) -> None:
    (small_export / WEIGHTS_NAME).unlink()
    with pytest.raises(ConfigError, match=rf"{small_export}: no {WEIGHTS_NAME}"):
        load_exported(small_export)


def test_bad_export_json_is_a_config_error_naming_the_file(small_export: Path) -> None:
    (small_export / CONFIG_NAME).write_text("{not json")
    with pytest.raises(ConfigError, match=rf"{CONFIG_NAME}: not valid JSON"):
        load_exported(small_export)
    (small_export / CONFIG_NAME).write_text(json.dumps({"format": "omnissl-encoder/1", "encoder": "resnet10"}))
    with pytest.raises(ConfigError, match=rf"{CONFIG_NAME}: 'params'"):
        load_exported(small_export)


def test_damaged_weights_are_a_checkpoint_error_naming_the_file(small_export: Path) -> None:
    weights = small_export / WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=rf"{weights}: cannot load"):
        load_exported(small_export)


def test_a_model_that_fails_to_load_is_one_line_through_every_command(small_export: Path, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    @ENCODERS.register("_probe_pickle_refused", modality="image", description="test-only")
    def _refuses(*, in_channels: int = 1):  # noqa: ANN202 - stands in for transformers refusing a pickle
        raise pickle.UnpicklingError("Weights only load failed\nsecond line")

    config = json.loads((small_export / CONFIG_NAME).read_text())
    (small_export / CONFIG_NAME).write_text(json.dumps({**config, "encoder": "_probe_pickle_refused",
                                                        "params": {"in_channels": 1}}))
    try:
        with pytest.raises(ConfigError, match=r"building '_probe_pickle_refused' failed: UnpicklingError: Weights"):
            load_exported(small_export)
        assert main(["embed", str(small_export), "--recipe", str(DEMO), "--out", str(tmp_path / "e.npy")]) == 2
        assert "_probe_pickle_refused" in _error_line(capsys)
        assert main(["compare", "--recipe", str(DEMO), "--public", str(small_export), "--finetune", "none",
                     "--fractions", "1.0", "--out", str(tmp_path / "cmp")]) == 2
        assert "_probe_pickle_refused" in _error_line(capsys)
    finally:
        ENCODERS.unregister("_probe_pickle_refused")


def test_public_mapping_goes_through_the_safe_loader(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "--recipe", str(DEMO), "--public", "{name: resnet10, width: 4, width: 8}",
                 "--finetune", "none", "--fractions", "1.0", "--out", str(tmp_path / "cmp")]) == 2
    assert "duplicate key 'width'" in _error_line(capsys)
