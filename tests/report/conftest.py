"""Fixtures for the report tests: one tiny trained run (through the CLI, so the automatic report is written)
and a headless-Chromium check that every image of an HTML page loads."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from omnissl.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "recipes" / "image" / "simclr_digits.yaml"
TINY = ["encoder.width=8", "objective.hidden_dim=32", "objective.projection_dim=16", "train.steps=4",
        "train.batch_size=32", "train.log_every=1", "train.warmup_steps=1", "train.monitor_every=2",
        "train.knn_every=2", "train.knn_samples=100", "train.checkpoint_every=2", "eval.max_train_samples=200",
        "eval.max_test_samples=100", "eval.probe_seeds=2", "eval.probe_max_iter=50"]

# Appended to a *copy* of the page: after load, writes into the DOM how many <img> decoded (naturalWidth > 0), how
# many pixels of each image are coloured (saturated: lines, markers, scatter points; axes and text are grey), and
# how many table cells holding "±" span more than one line box (a value split as "98.52 ±" / "0.34").
_CHECK = """<script>window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  const ink = imgs.map(i => {
    if (!(i.complete && i.naturalWidth > 0)) return -1;
    const c = document.createElement('canvas'); c.width = i.naturalWidth; c.height = i.naturalHeight;
    const g = c.getContext('2d'); g.drawImage(i, 0, 0);
    const px = g.getImageData(0, 0, c.width, c.height).data; let n = 0;
    for (let k = 0; k < px.length; k += 4) {
      const hi = Math.max(px[k], px[k + 1], px[k + 2]), lo = Math.min(px[k], px[k + 1], px[k + 2]);
      if (hi - lo > 60) n++;
    }
    return n;
  });
  const wrapped = Array.from(document.querySelectorAll('td')).filter(td => td.textContent.includes('±')).filter(td => {
    const r = document.createRange(); r.selectNodeContents(td);
    const tops = new Set(Array.from(r.getClientRects()).map(q => Math.round(q.top)));
    return tops.size > 1;
  }).length;
  const d = document.createElement('div'); d.id = 'omnissl-img-check';
  d.textContent = 'IMGCHECK loaded=' + ok + ' total=' + imgs.length + ' ink=' + ink.join(',') + ' wrapped=' + wrapped;
  document.body.appendChild(d);
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
    """Open a copy of ``page`` in headless Chromium with DNS disabled; return ``(loaded, total)`` images."""
    facts = browser_page_facts(page)
    return facts["loaded"], facts["total"]


@pytest.fixture(scope="session")
def browser_facts() -> object:
    return browser_page_facts


def browser_page_facts(page: Path) -> dict[str, object]:
    """What headless Chromium (DNS disabled) sees in a copy of ``page``: ``loaded``/``total`` images, ``ink`` (the
    coloured-pixel count of each image, -1 if it did not decode) and ``wrapped`` (cells with "±" over 2+ lines).
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
             "--window-size=1000,800", "--virtual-time-budget=10000", "--dump-dom", copy.as_uri()],
            check=False, capture_output=True, text=True, timeout=120)
    found = re.search(r"IMGCHECK loaded=(\d+) total=(\d+) ink=([-\d,]*) wrapped=(\d+)", process.stdout)
    assert found, f"chromium gave no check marker (rc {process.returncode}): {process.stderr[-2000:]}"
    ink = [int(v) for v in found.group(3).split(",") if v]
    return {"loaded": int(found.group(1)), "total": int(found.group(2)), "ink": ink, "wrapped": int(found.group(4))}
