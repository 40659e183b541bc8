"""A third-party plugin, installed only as a dist-info entry point in a temporary folder, is found, listed,
validated, trained and evaluated — the same path the built-in plugins take."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "examples" / "plugin_template"


def _install(site: Path) -> None:
    shutil.copy(TEMPLATE / "omnissl_sine.py", site / "omnissl_sine.py")
    dist = site / "omnissl_sine-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: omnissl-sine\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[omnissl.modalities]\nsine = omnissl_sine\n")


def _omnissl(*args: str, site: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run([sys.executable, "-m", "omnissl.cli.main", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def test_a_plugin_from_a_temporary_package_trains_end_to_end(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    _install(site)
    listed = _omnissl("list", "encoders", site=site, cwd=tmp_path)
    assert listed.returncode == 0 and "sine_mlp" in listed.stdout and "sine" in listed.stdout.splitlines()[0]
    recipe = str(TEMPLATE / "sine_simclr.yaml")
    assert _omnissl("validate", recipe, site=site, cwd=tmp_path).returncode == 0
    trained = _omnissl("train", recipe, "--run-dir", str(tmp_path / "run"), site=site, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-2000:]
    rows = {r["name"]: r for r in json.loads((tmp_path / "run" / "eval.json").read_text())["main"]["rows"]}
    assert {"simclr (trained)", "random init", "raw input"} <= set(rows)
    # Four well-separated frequencies: the trained encoder's probe must beat chance (25 %) by far.
    assert rows["simclr (trained)"]["cells"]["linear_probe"]["score"]["mean"] > 0.6


def test_without_the_plugin_the_recipe_says_what_is_missing(tmp_path: Path) -> None:
    done = _omnissl("validate", str(TEMPLATE / "sine_simclr.yaml"), site=tmp_path, cwd=tmp_path)
    assert done.returncode == 2 and "sine not installed" in done.stderr
