"""BlockReadout: pooled features from an intermediate transformer block, the same numbers as reading the hidden
state by hand, padding excluded; bad requests name the block count."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from omnissl.core.types import EncoderOutput, TokenEncoder, TokenSequence
from omnissl.eval.readout import BlockReadout
from omnissl.nn.transformer import TransformerTrunk

ROOT = Path(__file__).resolve().parents[2]


class _Tokens(TokenEncoder):
    def __init__(self) -> None:
        super().__init__()
        self.embed_dim = 8
        self.proj = nn.Linear(3, 8)
        self.trunk = TransformerTrunk(dim=8, depth=3, heads=2, pool="mean")

    def tokenize(self, x: dict) -> TokenSequence:
        return TokenSequence(tokens=self.proj(x["values"]), padding_mask=x["padding"])

    def encode_tokens(self, sequence: TokenSequence, *, return_hidden_states: bool = False) -> EncoderOutput:
        return self.trunk(sequence, return_hidden_states=return_hidden_states)

    def reconstruction_target(self, x: dict) -> torch.Tensor:
        return x["values"]


def _batch() -> dict:
    torch.manual_seed(0)
    padding = torch.zeros(2, 5, dtype=torch.bool)
    padding[1, 3:] = True
    return {"values": torch.randn(2, 5, 3), "padding": padding}


@pytest.mark.parametrize("block", [1, 2, 3])
def test_block_readout_is_the_masked_mean_of_that_block(block: int) -> None:
    encoder, x = _Tokens().eval(), _batch()
    with torch.no_grad():
        hidden = encoder.encode_tokens(encoder.tokenize(x), return_hidden_states=True).hidden_states[block - 1]
        pooled = BlockReadout(encoder, block=block)(x).pooled
    assert torch.allclose(pooled[0], hidden[0].mean(0), atol=1e-6)
    assert torch.allclose(pooled[1], hidden[1, :3].mean(0), atol=1e-6)  # the two padding tokens left out
    assert not torch.allclose(pooled, encoder(x).pooled)  # not the final, normed output


def test_block_readout_refuses_blocks_the_encoder_lacks() -> None:
    with pytest.raises(ValueError, match="block 4 asked of an encoder with 3 blocks"):
        BlockReadout(_Tokens(), block=4)(_batch())
    with pytest.raises(ValueError, match="counts from 1"):
        BlockReadout(_Tokens(), block=0)
    with pytest.raises(TypeError, match="needs a TokenEncoder"):
        BlockReadout(nn.Linear(2, 2), block=1)  # type: ignore[arg-type]


_TINY_MAE = ["encoder.dim=16", "encoder.depth=2", "encoder.heads=2", "objective.decoder_dim=16",
             "objective.decoder_heads=2", "eval.protocols=[{name: knn}]", "eval.knn_k=[5]"]


def test_recipe_readout_block_reaches_the_trained_and_the_random_init_row(monkeypatch) -> None:
    """``eval.readout_block`` in a recipe: ``omnissl eval`` reads that block of the trained encoder and of its
    random-init twin alike, names it in the row, and keeps its baseline cache cell apart from the final output's."""
    from omnissl.core.config import load_recipe
    from omnissl.train.assemble import assemble
    from omnissl.workflows import evaluation

    captured: list = []
    monkeypatch.setattr(evaluation, "run_table", lambda rows, *a, **k: captured.extend(rows) or None)
    recipe = load_recipe(ROOT / "recipes" / "image" / "mae.yaml", [*_TINY_MAE, "eval.readout_block=2"])
    evaluation.evaluate_assembled(assemble(recipe, synthetic=16), trained=True, device="cpu")
    trained, random_init = captured[0], next(r for r in captured if r.kind == "random init")
    assert isinstance(trained.encoder, BlockReadout) and trained.encoder.block == 2
    assert isinstance(random_init.encoder, BlockReadout) and random_init.encoder.block == 2
    assert trained.name.endswith("block 2)") and random_init.identity["readout_block"] == 2

    captured.clear()
    plain = load_recipe(ROOT / "recipes" / "image" / "mae.yaml", _TINY_MAE)
    evaluation.evaluate_assembled(assemble(plain, synthetic=16), trained=True, device="cpu")
    assert not any(isinstance(r.encoder, BlockReadout) for r in captured)
    assert "readout_block" not in next(r for r in captured if r.kind == "random init").identity


def test_recipe_readout_block_on_an_encoder_without_blocks_names_the_key() -> None:
    from omnissl.core.config import load_recipe
    from omnissl.core.errors import ConfigError
    from omnissl.train.assemble import assemble
    from omnissl.workflows.evaluation import evaluate_assembled

    recipe = load_recipe(ROOT / "recipes" / "image" / "simclr.yaml",
                         ["encoder.width=4", "objective.hidden_dim=16", "objective.projection_dim=8",
                          "eval.readout_block=1", "eval.protocols=[{name: knn}]"])
    with pytest.raises(ConfigError, match="eval.readout_block: tower 'main' encoder"):
        evaluate_assembled(assemble(recipe, synthetic=16), trained=True, device="cpu")
    with pytest.raises(ConfigError, match="readout_block"):
        load_recipe(ROOT / "recipes" / "image" / "simclr.yaml", ["eval.readout_block=0"])


def test_validate_rejects_readout_block_before_any_training() -> None:
    from omnissl.core.errors import ConfigError
    from omnissl.workflows.session import validate

    with pytest.raises(ConfigError, match="eval.readout_block: tower 'main'"):
        validate(ROOT / "recipes" / "image" / "simclr.yaml", ["encoder.width=4", "eval.readout_block=2"])
    assert validate(ROOT / "recipes" / "image" / "mae.yaml", [*_TINY_MAE, "eval.readout_block=2"]).eval.readout_block == 2


def test_validate_rejects_a_readout_block_past_the_encoders_depth() -> None:
    """``encoder.depth=2`` with ``eval.readout_block=3``: caught by ``omnissl validate`` with the block count, not
    after a training run; the encoder is left in the mode it was in."""
    from omnissl.core.errors import ConfigError
    from omnissl.workflows.session import validate

    with pytest.raises(ConfigError, match="eval.readout_block: tower 'main': .*block 3 asked of an encoder with 2 blocks"):
        validate(ROOT / "recipes" / "image" / "mae.yaml", [*_TINY_MAE, "eval.readout_block=3"])


def test_check_readout_block_restores_the_encoders_training_mode() -> None:
    from omnissl.core.config import load_recipe
    from omnissl.train.assemble import assemble
    from omnissl.workflows.session import check_readout_block

    assembled = assemble(load_recipe(ROOT / "recipes" / "image" / "mae.yaml", [*_TINY_MAE, "eval.readout_block=2"]),
                         synthetic=16)
    encoder = next(iter(assembled.encoders.values())).train()
    check_readout_block(assembled)
    assert encoder.training
