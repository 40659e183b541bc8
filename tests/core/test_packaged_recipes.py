"""Recipes ship with the package: found by name or path, listed with their headline result, copied to edit; and a
schema typo is reported before torch or any plugin is imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from omnissl.cli.main import main
from omnissl.core.errors import ConfigError
from omnissl.core.recipes import copy_recipe, recipes_root, resolve_recipe, shipped_recipes

ROOT = Path(__file__).resolve().parents[2]


def test_every_recipe_file_is_shipped_under_its_name() -> None:
    on_disk = {p.relative_to(ROOT / "recipes").with_suffix("").as_posix() for p in (ROOT / "recipes").glob("*/*.yaml")}
    assert set(shipped_recipes()) == on_disk and "image/simclr" in on_disk
    assert recipes_root().resolve() == (ROOT / "recipes").resolve()


def test_pyproject_ships_the_recipes_and_manifests_as_package_data() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"omnissl.recipes" = "recipes"' in text and '"omnissl.recipes" = ["*/*.yaml"]' in text
    assert '"*" = ["manifest.json"]' in text


def test_a_recipe_is_found_by_path_full_name_or_unique_file_name(tmp_path: Path) -> None:
    assert resolve_recipe("image/simclr") == ROOT / "recipes" / "image" / "simclr.yaml"
    assert resolve_recipe("simclr_digits") == ROOT / "recipes" / "image" / "simclr_digits.yaml"
    own = tmp_path / "simclr_digits"  # an existing file wins over a shipped name
    own.write_text("name: x\n", encoding="utf-8")
    assert resolve_recipe(str(own)) == own
    with pytest.raises(ConfigError, match=r"'simclr' is ambiguous: graph/simclr, image/simclr"):
        resolve_recipe("simclr")
    with pytest.raises(ConfigError, match=r"no shipped recipe of that name\. Did you mean 'simclr_digits'\?"):
        resolve_recipe("simclr_digit")


def test_list_recipes_shows_modality_method_and_headline(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "recipes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split(None, 3)[1:] for line in lines[1:]}
    assert set(rows) == set(shipped_recipes())
    assert rows["image/simclr"] == ["image", "simclr", "k-NN@200 55.6 % on CIFAR-10 test"]
    assert rows["text/mlm"] == ["text", "mlm", "-"]  # states no result: none is invented


def test_cp_copies_once_and_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cp", "image/simclr_digits", str(tmp_path / "mine") + "/"]) == 0
    copied = tmp_path / "mine" / "simclr_digits.yaml"
    assert copied.read_bytes() == (ROOT / "recipes" / "image" / "simclr_digits.yaml").read_bytes()
    copied.write_text("edited\n", encoding="utf-8")
    assert main(["cp", "simclr_digits", str(copied)]) == 2
    assert "never overwrites" in capsys.readouterr().err and copied.read_text(encoding="utf-8") == "edited\n"
    assert copy_recipe("tabular/scarf", tmp_path).name == "scarf.yaml"


def test_validate_accepts_a_recipe_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "simclr_digits", "--no-estimate"]) == 0
    assert "ok  " in capsys.readouterr().out


@pytest.mark.parametrize("verb", ["validate", "train"])
def test_a_schema_typo_is_reported_before_torch_or_any_plugin_loads(verb: str) -> None:
    code = ("import sys, io, json, contextlib\nfrom omnissl.cli.main import main\nerr = io.StringIO()\n"
            f"with contextlib.redirect_stderr(err):\n    rc = main(['{verb}', 'image/simclr', 'train.stpes=3'])\n"
            "print(json.dumps({'rc': rc, 'err': err.getvalue(), 'torch': 'torch' in sys.modules,"
            " 'plugins': [m for m in sys.modules if m.startswith('omnissl_')]}))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["rc"] == 2 and "train.stpes: unknown key (did you mean 'steps'?)" in out["err"]
    assert out["torch"] is False and out["plugins"] == []
