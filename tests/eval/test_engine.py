"""The evaluation engine: one table (Markdown / JSON / HTML), protocols validated by key path, rows checked before
any work, baseline cells cached (and recomputed when the key differs), progress lines, metrics beside top-1."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from omnissl.core.config import Component, EvalConfig
from omnissl.core.errors import ConfigError
from omnissl.core.types import DataBundle, Encoder, EncoderOutput
from omnissl.data.tensors import TensorRows, collate_rows
from omnissl.eval.engine import Progress, build_protocols, run_table
from omnissl.eval.metrics import classification_metrics
from omnissl.eval.protocol import Cell, EvalContext, Protocol, Row, cell
from omnissl.eval.table import ResultTable
from omnissl.workflows.baseline_cache import BaselineCache


class Linear(Encoder):
    embed_dim = 3

    def __init__(self, features: int = 4) -> None:
        super().__init__()
        self.proj = nn.Linear(features, 3)

    def forward(self, x: Any) -> EncoderOutput:
        return EncoderOutput(pooled=self.proj(x.float()))


def _bundle(n: int = 60) -> DataBundle:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 3
    x = torch.randn(n, 4, generator=g) + 3 * nn.functional.one_hot(labels, 4).float()
    return DataBundle(train=TensorRows(x, labels), test=TensorRows(x[: n // 2], labels[: n // 2]), collate=collate_rows,
                      num_classes=3, input_spec={}, raw_features=lambda b: b.float())


def _ctx(bundle: DataBundle) -> EvalContext:
    return EvalContext(bundle=bundle, train_set=bundle.train, test_set=bundle.test, device=torch.device("cpu"),
                       dataset_name="toy", modality="tabular")


class Counting(Protocol):
    def __init__(self) -> None:
        super().__init__("counting", {"v": 1})
        self.calls: list[str] = []

    def measure(self, ctx: EvalContext, row: Row) -> Cell:
        self.calls.append(row.name)
        return cell("count", {"mean": 0.5, "std": 0.0, "seeds": 1})


def test_metrics_beside_top1_on_an_imbalanced_set() -> None:
    truth = torch.tensor([0] * 8 + [1] * 2)
    majority = classification_metrics(torch.zeros(10, dtype=torch.long), truth)
    assert majority["top1"] == pytest.approx(0.8) and majority["balanced_accuracy"] == pytest.approx(0.5)
    assert majority["macro_f1"] == pytest.approx((2 * 8 / (16 + 2) + 0.0) / 2)


def test_one_table_renders_markdown_json_and_html_from_the_same_cells() -> None:
    bundle = _bundle()
    protocols = build_protocols(EvalConfig(knn_k=[5], probe_seeds=2, probe_max_iter=30), bundle)
    table = run_table([Row(name="lin", kind="ssl", encoder=Linear()), Row(name="raw input", kind="raw")], protocols,
                      _ctx(bundle), tower="main", progress=lambda n: Progress(n, stream=io.StringIO()))
    text, page = table.table(), table.html()
    again = ResultTable.from_json(json.loads(json.dumps(table.to_json())))
    assert again.table() == text and again.html() == page
    header = text.splitlines()[0]
    assert "k-NN k=5" in header and "linear probe" in header and "linear probe macro-F1" in header
    assert "<td>raw input</td>" in page and table.rows[1]["dim"] == 4
    assert table.rows[0]["cells"]["linear_probe"]["score"]["seeds"] == 2


def test_protocol_parameters_are_validated_with_their_key_path() -> None:
    config = EvalConfig(protocols=[Component(name="knn"), Component(name="linear_probe", sedes=2)])
    with pytest.raises(ConfigError, match=r"eval\.protocols\.1\.sedes: unknown parameter .*did you mean 'seeds'"):
        build_protocols(config, _bundle())
    with pytest.raises(ConfigError, match=r"eval\.protocols\.0\.name: unknown evaluation 'knnn'"):
        build_protocols(EvalConfig(protocols=[Component(name="knnn")]), _bundle())


def test_rows_are_checked_before_any_work() -> None:
    bundle, counting = _bundle(), Counting()
    with pytest.raises(ConfigError, match=r"row 'wrong width' cannot read dataset 'toy'"):
        run_table([Row(name="fine", kind="ssl", encoder=Linear()), Row(name="wrong width", kind="public",
                                                                         encoder=Linear(features=7))],
                  [counting], _ctx(bundle), tower="main")
    with pytest.raises(ConfigError, match=r"row 'img' is a image encoder but dataset 'toy' is tabular"):
        run_table([Row(name="img", kind="public", encoder=Linear(), modality="image")], [counting], _ctx(bundle),
                  tower="main")
    assert counting.calls == [], "nothing was measured before the check"


def test_baseline_cells_are_cached_and_trained_rows_are_not(tmp_path: Path) -> None:
    bundle, cache = _bundle(), BaselineCache(tmp_path / ".cache" / "baselines")
    rows = [Row(name="trained", kind="ssl", encoder=Linear()),
            Row(name="random init", kind="random init", encoder=Linear(), identity={"arch": "linear", "seed": 1})]
    first, second = Counting(), Counting()
    stream = io.StringIO()
    run_table(rows, [first], _ctx(bundle), tower="main", cache=cache, scope={"data": "toy"})
    run_table(rows, [second], _ctx(bundle), tower="main", cache=cache, scope={"data": "toy"},
              progress=lambda n: Progress(n, stream=stream))
    assert first.calls == ["trained", "random init"] and second.calls == ["trained"]
    assert "eval: [2/2] random init · counting (cached)" in stream.getvalue()
    assert len(list((tmp_path / ".cache" / "baselines").glob("*.json"))) == 1
    other = Counting()
    run_table(rows, [other], _ctx(bundle), tower="main", cache=cache, scope={"data": "another dataset"})
    assert other.calls == ["trained", "random init"], "a different key is a different cell"
    for path in (tmp_path / ".cache" / "baselines").glob("*.json"):  # a file whose key does not match: recompute
        saved = json.loads(path.read_text())
        path.write_text(json.dumps({**saved, "key": {"edited": True}}))
    edited = Counting()
    run_table(rows, [edited], _ctx(bundle), tower="main", cache=cache, scope={"data": "toy"})
    assert edited.calls == ["trained", "random init"]
