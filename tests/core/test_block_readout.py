"""BlockReadout: pooled features from an intermediate transformer block, the same numbers as reading the hidden
state by hand, padding excluded; bad requests name the block count."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from omnissl.core.types import EncoderOutput, TokenEncoder, TokenSequence
from omnissl.eval.readout import BlockReadout
from omnissl.nn.transformer import TransformerTrunk


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
