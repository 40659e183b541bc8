"""Modality knowledge lives in the plugins: the core's batch size, first-tensor, token-batch and report-image
questions are answered by hooks the plugins fill at import (behaviour unchanged)."""

from __future__ import annotations

import ast
from pathlib import Path

import torch

from omnissl.core.registry import require_plugins

CORE = Path(__file__).resolve().parents[2] / "omnissl"
HOOKED = ["core/types.py", "objectives/multiview.py", "objectives/mlm.py", "objectives/causal_lm.py",
          "report/extras.py"]


def test_the_hooked_core_files_name_no_modality_specific_field() -> None:
    found = []
    for name in HOOKED:
        tree = ast.parse((CORE / name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in ("input_ids", "attention_mask", "num_graphs"):
                found.append(f"{name}:{node.lineno} '{node.value}'")
            if isinstance(node, ast.Attribute) and node.attr in ("num_graphs",):
                found.append(f"{name}:{node.lineno} .{node.attr}")
    assert not found, found


def test_the_plugins_answer_through_the_hooks() -> None:
    from torch_geometric.data import Batch, Data

    from omnissl.core.types import batch_size_of
    from omnissl.objectives.mlm import token_batch
    from omnissl.objectives.multiview import first_tensor
    from omnissl.report.extras import is_image_batch

    require_plugins(names=["graph", "text", "image"])
    graphs = Batch.from_data_list([Data(x=torch.ones(3, 2), edge_index=torch.zeros(2, 0, dtype=torch.long))] * 4)
    assert batch_size_of(graphs) == 4 and first_tensor(graphs) is graphs.x
    tokens = {"input_ids": torch.tensor([[5, 6, 0]]), "attention_mask": torch.tensor([[1, 1, 0]])}
    ids, attention, rebuild = token_batch(tokens)
    assert ids.tolist() == [[5, 6, 0]] and attention.tolist() == [[1, 1, 0]]
    assert set(rebuild(ids, attention)) == {"input_ids", "attention_mask"}
    bare_ids, _, bare_rebuild = token_batch(torch.tensor([[1, 2]]))
    assert torch.equal(bare_rebuild(bare_ids, None), bare_ids)  # type: ignore[arg-type]
    assert is_image_batch(torch.zeros(2, 3, 8, 8, dtype=torch.uint8)) and not is_image_batch(torch.zeros(2, 5, 8, 8))
