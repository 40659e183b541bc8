"""Frozen features read from an intermediate block of a token encoder.

Layer-wise probing is how speech SSL is evaluated (SUPERB, Yang et al., 2021; HuBERT, Hsu et al., 2021, reads
its k-means targets from a middle layer): the last block of a masked-prediction model specialises in the
pretext targets, and the block that serves a downstream task best is chosen on validation data, never on test.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from omnissl.core.types import EncoderOutput, TokenEncoder
from omnissl.nn.transformer import masked_mean


class BlockReadout(nn.Module):
    """``encoder`` with its pooled features taken from block ``block`` (1 … depth) instead of the final output.

    Input as the encoder's; output :class:`EncoderOutput` with ``tokens (B, N, D)`` = that block's hidden states
    (before the encoder's final norm, as layer-wise probes read them) and ``pooled (B, D)`` = their mean over the
    valid (non-padding) tokens. The wrapped encoder's weights are shared, not copied.
    """

    def __init__(self, encoder: TokenEncoder, *, block: int) -> None:
        super().__init__()
        if not isinstance(encoder, TokenEncoder):
            raise TypeError(f"BlockReadout needs a TokenEncoder (tokenize + encode_tokens), got {type(encoder).__name__}")
        if block < 1:
            raise ValueError(f"BlockReadout: block counts from 1, got {block}")
        self.encoder, self.block = encoder, block
        self.embed_dim = getattr(encoder, "embed_dim", None)

    def forward(self, x: Any) -> EncoderOutput:
        out = self.encoder.encode_tokens(self.encoder.tokenize(x), return_hidden_states=True)
        hidden = out.hidden_states
        if not hidden:
            raise ValueError(f"BlockReadout: {type(self.encoder).__name__} returned no hidden_states")
        if self.block > len(hidden):
            raise ValueError(f"BlockReadout: block {self.block} asked of an encoder with {len(hidden)} blocks")
        tokens = hidden[self.block - 1]
        return EncoderOutput(pooled=masked_mean(tokens, out.padding_mask), tokens=tokens,
                             padding_mask=out.padding_mask)
