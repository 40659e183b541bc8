"""Masked language modelling (Devlin et al., 2019, "BERT: Pre-training of Deep Bidirectional Transformers"), with
optional span masking (Joshi et al., 2020, "SpanBERT"; Raffel et al., 2020, "T5" corrupt contiguous spans).

Input: any discrete token batch, ``{"input_ids": (B, L), "attention_mask": (B, L)}`` or a bare ``(B, L)`` id tensor.
The objective owns the LM head (dense → GELU → LayerNorm → vocabulary logits, as BERT's ``cls.predictions``) on the
encoder's per-token outputs ``(B, L, D)``; the vocabulary size and the mask / special ids come from the data
bundle's ``input_spec`` (the tokeniser), so the core never needs to know the tokeniser.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Callable

import torch
from torch import Tensor, nn

from omnissl.core.errors import IncompatibleError
from omnissl.objectives._global_stats import global_log, token_cross_entropy, token_mean
from omnissl.objectives.base import Objective
from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import Encoder, ObjectiveOutput, ViewSet

IGNORE = -100  # the label of every position that is not predicted (PyTorch's cross-entropy ignore_index)


# How a modality packs token batches, (matches, split): split(x) → (ids, attention, rebuild) where
# rebuild(ids, attention) is the encoder input for new ids. The text plugin registers its {"input_ids", ...} dicts.
TokenSplit = Callable[[Any], "tuple[Tensor, Tensor, Callable[[Tensor, Tensor], Any]]"]
_TOKEN_FORMATS: list[tuple[Callable[[Any], bool], TokenSplit]] = []


def register_token_format(matches: Callable[[Any], bool], split: TokenSplit) -> None:
    """Teach the token objectives (MLM, causal LM) a plugin's token batch format. Called at plugin import."""
    _TOKEN_FORMATS.append((matches, split))


def token_batch(x: Any) -> tuple[Tensor, Tensor, Callable[[Tensor, Tensor], Any]]:
    """A token batch → ``(ids (B, L) int64, attention (B, L) int64 with 1 = real token, rebuild)``; a bare id
    tensor is its own format (``rebuild`` returns the ids)."""
    if isinstance(x, Tensor):
        return x.long(), torch.ones_like(x, dtype=torch.long), lambda ids, _attention: ids
    for matches, split in _TOKEN_FORMATS:
        if matches(x):
            return split(x)
    raise TypeError(f"token objectives need a (B, L) id tensor or a token batch format a plugin registered "
                    f"(e.g. the text plugin's dicts), got {type(x).__name__}")


def token_inputs(x: Any) -> tuple[Tensor, Tensor]:
    """A token batch → ``(ids (B, L) int64, attention (B, L) int64 with 1 = real token)``."""
    ids, attention, _ = token_batch(x)
    return ids, attention


def eligible_positions(ids: Tensor, attention: Tensor, special_token_ids: Sequence[int]) -> Tensor:
    """``(B, L)`` bool: real tokens that are not special (``[CLS]``, ``[SEP]``, ``[PAD]`` … are never masked)."""
    specials = torch.as_tensor(list(special_token_ids), dtype=ids.dtype, device=ids.device)
    return attention.bool() & ~torch.isin(ids, specials)


def select_positions(eligible: Tensor, *, mask_prob: float, span_length: float | None) -> Tensor:
    """Which positions to predict, ``(B, L)`` bool.

    Token masking (BERT's ``create_pretraining_data.py``): exactly ``max(1, round(p·n))`` of a row's ``n`` eligible
    positions, uniformly. Span masking: span starts at rate ``p / m`` with geometric lengths of mean ``m`` (so about
    ``p`` of the tokens), cut at non-eligible positions; a row with none selected gets one position.
    """
    scores = torch.rand(eligible.shape, device=eligible.device).masked_fill(~eligible, -1.0)
    n = eligible.sum(dim=1, keepdim=True)
    if span_length is None:
        k = torch.where(n > 0, (n.float() * mask_prob).round().long().clamp_min(1), torch.zeros_like(n))
        rank = scores.argsort(dim=1, descending=True).argsort(dim=1)
        return eligible & (rank < k)
    if span_length < 1:
        raise ValueError(f"span_length must be ≥ 1, got {span_length}")
    starts = eligible & (torch.rand(eligible.shape, device=eligible.device) < mask_prob / span_length)
    u = torch.rand(eligible.shape, device=eligible.device).clamp_min(1e-12)
    # Geometric on {1, 2, …} with mean m: 1 + floor(log u / log(1 − 1/m)).
    if span_length > 1:
        lengths = 1 + (u.log() / math.log1p(-1.0 / span_length)).floor().long()
    else:
        lengths = torch.ones_like(u, dtype=torch.long)
    position = torch.arange(eligible.shape[1], device=eligible.device).expand_as(eligible)
    reach = torch.where(starts, position + lengths, torch.zeros_like(position)).cummax(dim=1).values
    selected = eligible & (reach > position)
    empty = (selected.sum(dim=1, keepdim=True) == 0) & (n > 0)
    best = scores.argmax(dim=1, keepdim=True)
    return selected | (empty & (position == best))


def mask_tokens(ids: Tensor, attention: Tensor, *, special_token_ids: Sequence[int], mask_token_id: int,
                vocab_size: int, mask_prob: float = 0.15, mask_replace_prob: float = 0.8,
                random_replace_prob: float = 0.1, span_length: float | None = None) -> tuple[Tensor, Tensor]:
    """BERT corruption: of the selected positions, 80 % → ``[MASK]``, 10 % → a random non-special token, 10 % kept.

    ids, attention ``(B, L)`` → ``(corrupted ids (B, L), labels (B, L))`` with ``labels = ids`` at selected
    positions and ``-100`` everywhere else (padding and specials included).
    """
    eligible = eligible_positions(ids, attention, special_token_ids)
    selected = select_positions(eligible, mask_prob=mask_prob, span_length=span_length)
    labels = torch.where(selected, ids, torch.full_like(ids, IGNORE))
    draw = torch.rand(ids.shape, device=ids.device)
    to_mask = selected & (draw < mask_replace_prob)
    to_random = selected & (draw >= mask_replace_prob) & (draw < mask_replace_prob + random_replace_prob)
    specials = torch.as_tensor(list(special_token_ids), dtype=torch.long, device=ids.device)
    candidates = torch.arange(vocab_size, device=ids.device)
    candidates = candidates[~torch.isin(candidates, specials)]
    random_ids = candidates[torch.randint(len(candidates), ids.shape, device=ids.device)]
    corrupted = torch.where(to_mask, torch.full_like(ids, mask_token_id), ids)
    corrupted = torch.where(to_random, random_ids, corrupted)
    return corrupted, labels


class LMHead(nn.Module):
    """BERT's prediction head: ``(M, D)`` hidden states → ``(M, V)`` vocabulary logits."""

    def __init__(self, dim: int, vocab_size: int) -> None:
        super().__init__()
        self.transform = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.LayerNorm(dim))
        self.decoder = nn.Linear(dim, vocab_size)

    def forward(self, hidden: Tensor) -> Tensor:
        return self.decoder(self.transform(hidden))


def require_token_outputs(encoder: Encoder, objective: str) -> None:
    """Per-token outputs of the *whole* sequence are enough here (no need to encode token subsets like MAE)."""
    if "tokens" not in encoder.output_kinds:
        raise IncompatibleError(f"objective '{objective}' needs per-token outputs, but {type(encoder).__name__} only "
                                f"gives {', '.join(sorted(encoder.output_kinds))}; use a transformer text encoder")


class MaskedLM(Objective):
    """Predict the original ids at the corrupted positions; cross-entropy over those positions only (float32)."""

    requires = "tokens"

    def __init__(self, encoder: Encoder, *, vocab_size: int, mask_token_id: int, special_token_ids: Sequence[int],
                 mask_prob: float, mask_replace_prob: float, random_replace_prob: float,
                 span_length: float | None) -> None:
        nn.Module.__init__(self)  # the base check demands a subset-encoding TokenEncoder; MLM needs less
        require_token_outputs(encoder, "mlm")
        if not 0 < mask_prob < 1 or mask_replace_prob + random_replace_prob > 1:
            raise ValueError("need 0 < mask_prob < 1 and mask_replace_prob + random_replace_prob ≤ 1")
        self.encoder = encoder
        self.head = LMHead(encoder.embed_dim, vocab_size)
        self.vocab_size, self.mask_token_id = vocab_size, mask_token_id
        self.special_token_ids = tuple(special_token_ids)
        self.mask_prob, self.span_length = mask_prob, span_length
        self.mask_replace_prob, self.random_replace_prob = mask_replace_prob, random_replace_prob

    def forward(self, views: ViewSet) -> ObjectiveOutput:
        x = views.original if views.original is not None else views.global_views[0]
        ids, attention, rebuild = token_batch(x)
        corrupted, labels = mask_tokens(ids, attention, special_token_ids=self.special_token_ids,
                                        mask_token_id=self.mask_token_id, vocab_size=self.vocab_size,
                                        mask_prob=self.mask_prob, mask_replace_prob=self.mask_replace_prob,
                                        random_replace_prob=self.random_replace_prob, span_length=self.span_length)
        output = self.encoder(rebuild(corrupted, attention))
        if output.tokens is None:
            raise IncompatibleError("mlm: the encoder returned no token outputs")
        chosen = labels != IGNORE
        logits = self.head(output.tokens[chosen]).float()  # only the predicted positions: (M, V)
        # ranks hold different numbers of masked tokens: each rank's share of the global token mean
        loss = token_cross_entropy(logits, labels[chosen])
        accuracy = token_mean((logits.argmax(dim=1) == labels[chosen]).float())
        return ObjectiveOutput(loss=loss, logs={"mlm_loss": global_log(loss), "mlm_accuracy": global_log(accuracy),
                                                "masked_tokens": float(chosen.sum())},
                               embeddings=output.pooled.detach())


@OBJECTIVES.register("mlm", description="BERT masked language modelling, 80/10/10, optional spans")
def build_mlm(*, encoder: Encoder, vocab_size: int, mask_token_id: int, special_token_ids: tuple[int, ...] = (),
              mask_prob: float = 0.15, mask_replace_prob: float = 0.8, random_replace_prob: float = 0.1,
              span_length: float | None = None) -> MaskedLM:
    """Paper defaults: 15 % of tokens, 80 % [MASK] / 10 % random / 10 % unchanged. ``span_length: 3`` masks
    geometric spans of mean length 3 instead of single tokens (SpanBERT / T5-style span corruption)."""
    return MaskedLM(encoder, vocab_size=vocab_size, mask_token_id=mask_token_id, special_token_ids=special_token_ids,
                    mask_prob=mask_prob, mask_replace_prob=mask_replace_prob, random_replace_prob=random_replace_prob,
                    span_length=span_length)
