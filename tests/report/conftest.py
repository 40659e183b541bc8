"""Fixtures for the report tests: one tiny trained run (through the CLI, so the automatic report is written)
and a headless-Chromium check that every image of an HTML page loads."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from omnissl.cli import main

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "recipes" / "image" / "simclr_digits.yaml"
TINY = ["encoder.width=8", "objective.hidden_dim=32", "objective.projection_dim=16", "train.steps=4",
        "train.batch_size=32", "train.log_every=1", "train.warmup_steps=1", "train.monitor_every=2",
        "train.knn_every=2", "train.knn_samples=100", "train.checkpoint_every=2", "eval.max_train_samples=200",
        "eval.max_test_samples=100", "eval.probe_seeds=2", "eval.probe_max_iter=50"]

# Appended to a *copy* of the page: after load, writes how many <img> decoded (naturalWidth > 0) into the DOM.
_CHECK = """<script>window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  const d = document.createElement('div'); d.id = 'omnissl-img-check';
  d.textContent = 'IMGCHECK loaded=' + ok + ' total=' + imgs.length; document.body.appendChild(d);
});</script>"""


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    run = tmp_path_factory.mktemp("report") / "run"
    assert main(["train", str(DEMO), "--run-dir", str(run), "--data-root", str(data_root), *TINY]) == 0
    return run


@pytest.fixture(scope="session")
def browser_image_check() -> object:
    return _browser_image_check


def _browser_image_check(page: Path) -> tuple[int, int]:
    """Open a copy of ``page`` in headless Chromium with DNS disabled; return ``(loaded, total)`` images.
    Chromium missing is a failure (CI installs it: see .ci/run), never a skip."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if binary is None:
        pytest.fail("chromium not found: apt-get install -y chromium (the browser check must run)")
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "page.html"
        copy.write_text(page.read_text(encoding="utf-8").replace("</body>", _CHECK + "</body>"), encoding="utf-8")
        process = subprocess.run(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={scratch}/profile",
             "--host-resolver-rules=MAP * ~NOTFOUND",  # no network at view time: any fetch would fail
             "--virtual-time-budget=10000", "--dump-dom", copy.as_uri()],
            check=False, capture_output=True, text=True, timeout=120)
    found = re.search(r"IMGCHECK loaded=(\d+) total=(\d+)", process.stdout)
    assert found, f"chromium gave no check marker (rc {process.returncode}): {process.stderr[-2000:]}"
    return int(found.group(1)), int(found.group(2))
