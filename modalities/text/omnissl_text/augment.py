"""Batched text augmentations on padded token tensors, for contrastive methods (SimCSE-style views, CLEAR, DeCLUTR).

Each op takes ``{"input_ids": (B, L), "attention_mask": (B, L)}`` and returns a new dict of the same kind (``L`` may
shrink). Special tokens (``[CLS]``, ``[SEP]`` …, from the tokeniser via ``input_spec``) stay where they are and are
never deleted; randomness is drawn per sample from torch's RNG on the batch's device. Ops from the sentence-level
augmentations studied by Wu et al. (2020, "CLEAR") and Gao et al. (2021, "SimCSE", Table 2: crop / word deletion).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from omnissl.core.registry import AUGMENTATIONS
from omnissl_text.collate import unpack

TextOp = Callable[[Any], dict[str, Tensor]]


def _content(ids: Tensor, attention: Tensor, special: Sequence[int]) -> Tensor:
    """``(B, L)`` bool: real, non-special tokens (the only ones an op may move or drop)."""
    specials = torch.as_tensor(list(special), dtype=ids.dtype, device=ids.device)
    return attention.bool() & ~torch.isin(ids, specials)


def compact(ids: Tensor, attention: Tensor, keep: Tensor, *, pad_token_id: int) -> dict[str, Tensor]:
    """Keep the ``keep`` positions of each row in order, left-aligned, re-padded to the new longest row."""
    keep = keep & attention.bool()
    # A stable sort on "dropped" moves kept positions to the front without reordering them.
    order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices
    lengths = keep.sum(dim=1)
    width = max(int(lengths.max()), 1)
    new_ids = ids.gather(1, order)[:, :width]
    new_attention = (torch.arange(width, device=ids.device).unsqueeze(0) < lengths.unsqueeze(1)).long()
    new_ids = torch.where(new_attention.bool(), new_ids, torch.full_like(new_ids, pad_token_id))
    return {"input_ids": new_ids, "attention_mask": new_attention}


def _ranks(content: Tensor) -> Tensor:
    """Position of each content token among its row's content tokens (0-based); junk elsewhere."""
    return content.long().cumsum(dim=1) - 1


@AUGMENTATIONS.register("token_deletion", modality="text", description="drop each non-special token with prob p")
def token_deletion(*, p: float = 0.1, special_token_ids: tuple[int, ...] = (), pad_token_id: int = 0) -> TextOp:
    """A row that would lose every content token keeps its first one, so no view is empty."""
    if not 0 <= p < 1:
        raise ValueError(f"p must be in [0, 1), got {p}")

    def apply(x: Any) -> dict[str, Tensor]:
        ids, attention = unpack(x)
        content = _content(ids, attention, special_token_ids)
        drop = content & (torch.rand(ids.shape, device=ids.device) < p)
        emptied = (content & ~drop).sum(dim=1) == 0
        first = content & (_ranks(content) == 0)
        drop = drop & ~(emptied.unsqueeze(1) & first)
        return compact(ids, attention, ~drop, pad_token_id=pad_token_id)
    return apply


@AUGMENTATIONS.register("span_crop", modality="text", description="keep one random contiguous span of the text")
def span_crop(*, min_fraction: float = 0.6, max_fraction: float = 1.0, special_token_ids: tuple[int, ...] = (),
              pad_token_id: int = 0) -> TextOp:
    """Per row, keep ``ceil(f·n)`` consecutive content tokens (``f ~ U[min, max]``, ``n`` content tokens) from a
    uniform start; special tokens are kept, so ``[CLS] span [SEP]`` stays well-formed."""
    if not 0 < min_fraction <= max_fraction <= 1:
        raise ValueError(f"need 0 < min_fraction ≤ max_fraction ≤ 1, got {min_fraction}, {max_fraction}")

    def apply(x: Any) -> dict[str, Tensor]:
        ids, attention = unpack(x)
        content = _content(ids, attention, special_token_ids)
        n = content.sum(dim=1)
        fraction = torch.empty(ids.shape[0], device=ids.device).uniform_(min_fraction, max_fraction)
        length = (fraction * n).ceil().long().clamp(min=1)
        length = torch.minimum(length, n.clamp_min(1))
        start = (torch.rand(ids.shape[0], device=ids.device) * (n - length + 1)).floor().long()
        rank = _ranks(content)
        inside = (rank >= start.unsqueeze(1)) & (rank < (start + length).unsqueeze(1))
        keep = (attention.bool() & ~content) | (content & inside)
        return compact(ids, attention, keep, pad_token_id=pad_token_id)
    return apply


@AUGMENTATIONS.register("local_shuffle", modality="text", description="shuffle tokens within windows of w tokens")
def local_shuffle(*, window: int = 3, p: float = 1.0, special_token_ids: tuple[int, ...] = (),
                  pad_token_id: int = 0) -> TextOp:
    """Content tokens ``k·w … k·w+w-1`` are permuted among themselves (rows picked with probability ``p``);
    the multiset of tokens, the length and the padding are unchanged."""
    if window < 1:
        raise ValueError(f"window must be ≥ 1, got {window}")

    def apply(x: Any) -> dict[str, Tensor]:
        ids, attention = unpack(x)
        content = _content(ids, attention, special_token_ids)
        content = content & (torch.rand(ids.shape[0], 1, device=ids.device) < p)
        rank = _ranks(content)
        never = torch.full(ids.shape, float("inf"), device=ids.device)
        # Sorting by (window index + uniform noise) orders content positions window by window, randomly within.
        shuffled_key = torch.where(content, (rank // window).float() + torch.rand(ids.shape, device=ids.device), never)
        original_key = torch.where(content, rank.float(), never)
        source = torch.sort(shuffled_key, dim=1, stable=True).indices
        target = torch.sort(original_key, dim=1, stable=True).indices
        # Non-content positions sort last in the same (stable) order in both, so they map onto themselves.
        out = ids.clone().scatter_(1, target, ids.gather(1, source))
        return {"input_ids": out, "attention_mask": attention.long()}
    return apply
