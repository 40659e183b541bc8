"""Bidirectional HF text encoders (BERT, MiniLM, RoBERTa …) as :class:`~omnissl.core.types.TokenEncoder`\\ s, so the
core MAE and data2vec — one masked objective for speech, vision and text (Baevski et al., 2022) — run on text.

``tokenize(x)``: ids ``(B, L)`` → the model's own embedding layer (word + position + token type, LayerNorm,
dropout) ``(B, L, D)`` with ``padding_mask (B, L)`` (True = pad). ``encode_tokens`` runs the model's transformer
layers on any subset of those embeddings (positions are already in them, so the order of the subset does not
matter), with attention and pooling restricted to the subset's real tokens. On the whole sequence it computes what
``forward`` (the HF model call MLM / SimCSE use, unchanged) computes: tested to match in eval mode.

Text reconstruction is discrete: ``reconstruction_target(x)`` is the ids ``(B, L)`` and ``reconstruction_classes``
the vocabulary size, so MAE predicts masked token ids with cross-entropy. ``always_visible_tokens(x)`` marks the
special tokens (``[CLS]``, ``[SEP]`` …) which, as in BERT, are never masked or predicted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from omnissl.core.types import EncoderOutput, TokenEncoder, TokenSequence
from omnissl_text.collate import unpack
from omnissl_text.encoders import HFTextEncoder, Pool, pool_tokens


def supports_token_api(model: nn.Module) -> bool:
    """A BERT-shaped bidirectional model: an ``embeddings`` module taking ``input_ids`` and ``encoder.layer`` blocks.

    Causal models (GPT-2) are excluded: their subset "encoding" would let a token see only the randomly ordered
    visible tokens before it, which is not MAE's encoder.
    """
    layers = getattr(getattr(model, "encoder", None), "layer", None)
    return (isinstance(getattr(model, "embeddings", None), nn.Module) and isinstance(layers, nn.ModuleList)
            and not bool(getattr(model.config, "is_decoder", False)))


class HFTokenTextEncoder(HFTextEncoder, TokenEncoder):
    """:class:`HFTextEncoder` plus the token-encoder API; ``forward`` is HFTextEncoder's (the plain HF call)."""

    def __init__(self, model: nn.Module, *, pool: Pool, name: str, special_token_ids: Sequence[int] = ()) -> None:
        super().__init__(model, pool=pool, is_causal=False, name=name)
        self.reconstruction_classes = self.vocab_size  # read by the core MAE: cross-entropy over the vocabulary
        self.register_buffer("special_ids", torch.as_tensor(sorted(set(special_token_ids)), dtype=torch.long),
                             persistent=False)

    def forward(self, x: Any) -> EncoderOutput:
        return HFTextEncoder.forward(self, x)

    def tokenize(self, x: Any) -> TokenSequence:
        ids, attention = unpack(x)
        self._check_length(ids)
        return TokenSequence(tokens=self.model.embeddings(input_ids=ids), padding_mask=attention == 0)

    def encode_tokens(self, sequence: TokenSequence, *, return_hidden_states: bool = False) -> EncoderOutput:
        from transformers.masking_utils import create_bidirectional_mask

        hidden, padding = sequence.tokens, sequence.padding_mask
        if padding is not None and bool(padding.all(dim=1).any()):
            raise ValueError(f"{self.name}: a sequence has no real token: every position is padding")
        attention = (torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device) if padding is None
                     else (~padding).long())
        mask = create_bidirectional_mask(config=self.model.config, inputs_embeds=hidden, attention_mask=attention)
        states = []
        for layer in self.model.encoder.layer:
            hidden = layer(hidden, mask)
            states.append(hidden)
        return EncoderOutput(pooled=pool_tokens(hidden, attention, self.pool), tokens=hidden,
                             padding_mask=attention == 0, hidden_states=states if return_hidden_states else None)

    def reconstruction_target(self, x: Any) -> Tensor:
        """The token ids ``(B, L)`` int64: MAE's class targets (``reconstruction_classes`` = vocabulary size)."""
        return unpack(x)[0].long()

    def always_visible_tokens(self, x: Any) -> Tensor:
        """``(B, L)`` bool: special tokens (from the data's ``special_token_ids``), kept visible and never predicted."""
        ids, _ = unpack(x)
        return torch.isin(ids, self.special_ids.to(ids.device))

    def _check_length(self, ids: Tensor) -> None:
        if self.max_positions and ids.shape[1] > self.max_positions:
            raise ValueError(f"{self.name}: sequence length {ids.shape[1]} exceeds the model's "
                             f"{self.max_positions} positions; lower data.max_length")
