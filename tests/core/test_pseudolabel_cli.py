"""``omnissl pseudolabel RUN`` on a tiny trained digits run: the table (plain probe beside + pseudo-labels) printed
and written as JSON + Markdown, and one-line errors for a bad fraction, a non-run and a dataset without labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import omnissl.report.auto
from omnissl.cli import main as cli
from omnissl.core.errors import ConfigError
from omnissl.workflows.pseudolabel import pseudolabel_assembled
from omnissl.workflows.session import load_trained

pytestmark = pytest.mark.usefixtures("one_thread")

DEMO = str(Path(__file__).resolve().parents[2] / "recipes" / "image" / "simclr_digits.yaml")
TINY = ["encoder.width=4", "objective.hidden_dim=16", "objective.projection_dim=8", "train.batch_size=16",
        "train.steps=2", "train.log_every=1", "data.upscale=8"]
SMALL = ["eval.max_train_samples=400", "eval.max_test_samples=150", "eval.probe_max_iter=50"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    patch = pytest.MonkeyPatch()
    patch.setattr(omnissl.report.auto, "auto_report", lambda *_a, **_k: None)  # plots are not under test
    folder = tmp_path_factory.mktemp("pl") / "run"
    assert cli.main(["train", DEMO, "--run-dir", str(folder), "--no-eval", "--no-estimate", *TINY]) == 0
    patch.undo()
    return folder


def test_pseudolabel_prints_the_table_and_writes_json_and_markdown(run: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pl.json"
    assert cli.main(["pseudolabel", str(run), "--labels", "0.1", "0.05", "--seeds", "1", "--out", str(out),
                     *SMALL]) == 0
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if line.startswith("| features"))
    assert [c.strip() for c in header.strip("|").split("|")][3:] == ["probe @5%", "probe + pseudo-labels @5%", "probe @10%",
                                       "probe + pseudo-labels @10%"]
    assert "| simclr (trained) |" in printed and "| random init |" in printed and "| raw input |" in printed
    assert "keep share chosen on validation" in printed
    saved = json.loads(out.read_text())
    assert saved["fractions"] == [0.05, 0.1] and saved["seeds"] == 1
    cells = saved["tables"]["main"]["rows"][0]["cells"]["pseudolabel"]
    assert 0.0 <= cells["score"]["mean"] <= 1.0 and cells["details"]["fractions"]["5%"]["labels"] == 20
    assert out.with_suffix(".md").read_text().startswith("# Self-training after SSL")


@pytest.mark.parametrize("labels", [["1.0"], ["0"], ["0.1", "1.5"]])
def test_a_bad_fraction_is_one_line(run: Path, labels: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["pseudolabel", str(run), "--labels", *labels]) == 2
    assert "omnissl: error: --labels: label fractions must lie in (0, 1)" in capsys.readouterr().err


def test_not_a_run_and_no_labels_fail_clearly(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["pseudolabel", str(tmp_path / "missing")]) == 2
    assert "is not a run directory" in capsys.readouterr().err
    assembled = load_trained(run, overrides=SMALL)
    assembled.bundle.num_classes = None
    with pytest.raises(ConfigError, match="publishes no labels"):
        pseudolabel_assembled(assembled, fractions=[0.1], seeds=1, source=str(run))
