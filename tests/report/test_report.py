"""Run reports on a real (tiny) digits run: files, embedded images, the browser check, and the pieces."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from omnissl.core.errors import DataError
from omnissl.report import write_report
from omnissl.report.auto import auto_report
from omnissl.report.embedding_map import knn_consistency
from omnissl.report.extras import plot_mae_reconstructions, unpatchify
from omnissl.report.plots import read_metrics, series


def test_train_writes_a_self_contained_report_every_image_loads_in_chromium(tiny_run: Path,
                                                                          browser_image_check: Any) -> None:
    page = tiny_run / "report.html"
    assert page.is_file(), "train must write the report automatically"
    figures = {p.name for p in (tiny_run / "report").glob("*.png")}
    assert {"loss_lr.png", "knn_accuracy.png", "collapse_monitor.png", "embedding_map.png",
            "retrieval.png"} <= figures
    text = page.read_text(encoding="utf-8")
    sources = re.findall(r'<img [^>]*src="([^"]+)"', text)
    assert len(sources) == len(figures)
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    embedded = {base64.b64decode(s.split(",", 1)[1]) for s in sources}
    assert embedded == {(tiny_run / "report" / name).read_bytes() for name in figures}
    assert not re.search(r'(src|href)="(https?:)?//', text), "the page must not fetch anything"
    assert "<script" not in text
    # The probe table from eval.json is in the page, with the baselines.
    for row in json.loads((tiny_run / "eval.json").read_text())["main"]["rows"]:
        probe = row["cells"]["linear_probe"]["score"]
        assert f"{100 * probe['mean']:.2f} ± {100 * probe['std']:.2f}" in text
    loaded, total = browser_image_check(page)
    assert total == len(figures) and loaded == total


def test_report_from_the_cli_on_an_existing_run_and_without_a_model(tiny_run: Path, tmp_path: Path,
                                                                    browser_image_check: Any) -> None:
    from omnissl.cli.main import main

    assert main(["report", str(tiny_run), "--points", "60"]) == 0
    # Curves-only report for a directory with just metrics: no model, no eval.json.
    (tmp_path / "metrics.jsonl").write_text((tiny_run / "metrics.jsonl").read_text())
    page = write_report(tmp_path)
    assert (tmp_path / "report" / "loss_lr.png").is_file() and not (tmp_path / "report" / "embedding_map.png").exists()
    assert browser_image_check(page) == (3, 3)


def test_metrics_reader_tolerates_only_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n{"step": 3, "lo')
    assert series(read_metrics(path), "loss") == ([1, 2], [2.0, 1.5])
    path.write_text('{"step": 1, "loss": 2.0}\nnot json\n{"step": 3, "loss": 1.0}\n')
    with pytest.raises(DataError, match="line 2"):
        read_metrics(path)
    path.write_text('{"loss": 2.0}\n{"step": 3, "loss": 1.0}\n')
    with pytest.raises(DataError, match="line 1 has no 'step'"):
        read_metrics(path)


def test_a_failing_report_warns_and_does_not_raise(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    auto_report(tmp_path / "missing")
    assert "warning: could not write the report" in capsys.readouterr().err


def test_knn_consistency_on_a_hand_checked_case() -> None:
    # Two tight clusters, labels agree within each: every neighbour (k=1) shares the label.
    features = torch.tensor([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [0.1, 0.99]])
    assert knn_consistency(features, torch.tensor([0, 0, 1, 1]), k=1) == 1.0
    assert knn_consistency(features, torch.tensor([0, 1, 0, 1]), k=1) == 0.0


def test_unpatchify_inverts_the_vit_reconstruction_target() -> None:
    from omnissl.core.registry import ENCODERS, load_plugins

    load_plugins()
    vit = ENCODERS.get("vit").builder(image_size=8, patch_size=4, in_channels=3, dim=16, depth=1, heads=2)
    x = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    patches = vit.reconstruction_target(x)
    assert torch.equal(unpatchify(patches, patch_size=4, channels=3, height=8, width=8), vit.normalize(x))


def test_mae_reconstruction_figure_for_an_image_mae(tmp_path: Path) -> None:
    from omnissl.core.registry import ENCODERS, OBJECTIVES, load_plugins

    load_plugins()
    vit = ENCODERS.get("vit").builder(image_size=8, patch_size=4, in_channels=1, dim=16, depth=1, heads=2,
                                      mean=(0.5,), std=(0.25,))
    mae = OBJECTIVES.get("mae").builder(encoder=vit, decoder_dim=16, decoder_depth=1, decoder_heads=2)
    images = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8)
    path = plot_mae_reconstructions(mae, images, tmp_path / "mae.png")
    assert path is not None and path.stat().st_size > 1000
    assert mae.training, "the objective's mode is restored"
    simclr_like = torch.nn.Linear(2, 2)
    assert plot_mae_reconstructions(simclr_like, images, tmp_path / "none.png") is None


def test_the_browser_check_catches_a_broken_image(tmp_path: Path, browser_image_check: Any) -> None:
    from omnissl.report.html import Section, write_html

    png = tmp_path / "ok.png"
    import matplotlib.pyplot as plt

    plt.figure(figsize=(1, 1)).savefig(png)
    page = write_html(tmp_path / "page.html", "t", [Section(title="s", images=[png])])
    broken = tmp_path / "broken.html"
    broken.write_text(page.read_text().replace("</section>", '<img src="data:image/png;base64,AAAA"></section>'))
    assert browser_image_check(page) == (1, 1)
    assert browser_image_check(broken) == (1, 2)
