"""The transformer body every token encoder shares: pre-norm blocks, a final LayerNorm, CLS or masked-mean pooling.

Modalities differ in how they *tokenize* (image patches, spectrogram patches, series patches, feature tokens); the
body that runs on any subset of those tokens — which is what MAE and data2vec need — is the same, so it lives here.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from omnissl.core.types import EncoderOutput, TokenSequence


def masked_mean(tokens: Tensor, padding: Tensor | None) -> Tensor:
    """Mean over the non-padded tokens: ``(B, N, D)`` with padding ``(B, N)`` (True = pad) → ``(B, D)``."""
    if padding is None:
        return tokens.mean(dim=1)
    keep = (~padding).unsqueeze(-1).to(tokens.dtype)
    return (tokens * keep).sum(dim=1) / keep.sum(dim=1).clamp_min(1.0)


class TransformerTrunk(nn.Module):
    """``TokenSequence (B, N, D)`` → :class:`EncoderOutput` with tokens ``(B, N, D)`` and pooled ``(B, D)``.

    ``pool="cls"`` prepends a learned CLS token (Devlin et al., 2019; Dosovitskiy et al., 2021) and pools it;
    ``pool="mean"`` averages the non-padded tokens. A sample whose tokens are all padding attends to itself rather
    than producing NaN attention. ``hidden_states`` (one ``(B, N, D)`` per block, CLS dropped) feed data2vec.
    ``checkpoint_blocks`` (set by ``train.activation_checkpointing``) recomputes each block in the backward pass
    instead of keeping its activations; dropout masks are replayed (saved RNG state), so gradients are unchanged.
    """

    checkpoint_blocks: bool = False

    def __init__(self, *, dim: int, depth: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0,
                 pool: Literal["cls", "mean"] = "cls") -> None:
        super().__init__()
        self.pool = pool
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if pool == "cls" else None
        self.blocks = nn.ModuleList([
            nn.TransformerEncoderLayer(dim, heads, int(dim * mlp_ratio), dropout, activation="gelu",
                                       batch_first=True, norm_first=True)
            for _ in range(depth)
        ])
        self.norm = nn.LayerNorm(dim)
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02)

    def forward(self, sequence: TokenSequence, *, return_hidden_states: bool = False) -> EncoderOutput:
        x, padding = sequence.tokens, sequence.padding_mask
        attend = None if padding is None else padding & ~padding.all(dim=1, keepdim=True)
        prefix = 0
        if self.cls_token is not None:
            prefix = 1
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
            if attend is not None:
                attend = torch.cat([attend.new_zeros(attend.shape[0], 1), attend], dim=1)
        hidden = []
        for block in self.blocks:
            if self.checkpoint_blocks and torch.is_grad_enabled():
                x = checkpoint(block, x, src_key_padding_mask=attend, use_reentrant=False)
            else:
                x = block(x, src_key_padding_mask=attend)
            if return_hidden_states:
                hidden.append(x[:, prefix:])
        x = self.norm(x)
        tokens = x[:, prefix:]
        pooled = x[:, 0] if self.cls_token is not None else masked_mean(tokens, padding)
        return EncoderOutput(pooled=pooled, tokens=tokens, padding_mask=padding,
                             hidden_states=hidden if return_hidden_states else None)
