"""Pre-tokenised text datasets, the dynamic-padding collate, and the TF-IDF raw-input baseline.

A batch's ``x`` is ``{"input_ids": (B, L) int64, "attention_mask": (B, L) int64 (1 = real token, 0 = pad)}`` with
``L`` the longest sequence *in that batch* (dynamic padding, pad id from the tokeniser); encoders turn the mask into
``EncoderOutput.padding_mask`` (``True`` = pad).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from omnissl.core.errors import DataError


class TextDataset(Dataset[dict[str, Any]]):
    """Token-id sequences (already truncated, specials included) with int64 labels; ``texts`` kept for baselines."""

    def __init__(self, ids: Sequence[Sequence[int]], labels: Sequence[int] | Tensor, *, texts: Sequence[str] = (),
                 source: str = "") -> None:
        if len(ids) != len(labels):
            raise DataError(f"{source}: {len(ids)} token sequences but {len(labels)} labels")
        for row, seq in enumerate(ids):
            if len(seq) == 0:
                raise DataError(f"{source}: row {row} tokenises to an empty sequence")
        self.ids = [torch.as_tensor(seq, dtype=torch.long) for seq in ids]
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.texts = list(texts)
        self.source = source

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"input_ids": self.ids[index], "y": self.labels[index], "index": index}


class PadCollate:
    """Pads a list of samples to the batch's longest sequence; a class (not a closure) so workers can pickle it."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        lengths = torch.tensor([len(s["input_ids"]) for s in samples])
        width = int(lengths.max())
        ids = torch.full((len(samples), width), self.pad_token_id, dtype=torch.long)
        for row, sample in enumerate(samples):
            ids[row, : lengths[row]] = sample["input_ids"]
        attention = (torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)).long()
        return {"x": {"input_ids": ids, "attention_mask": attention},
                "y": torch.stack([torch.as_tensor(s["y"]) for s in samples]),
                "index": torch.as_tensor([s["index"] for s in samples])}


def unpack(x: Any) -> tuple[Tensor, Tensor]:
    """A text batch (dict, or a bare ``(B, L)`` id tensor meaning nothing is padded) → ``(ids, attention_mask)``."""
    if isinstance(x, Tensor):
        return x, torch.ones_like(x)
    if not isinstance(x, dict) or "input_ids" not in x:
        raise TypeError(f"text input must be a (B, L) id tensor or a dict with 'input_ids', got {type(x).__name__}")
    ids = x["input_ids"]
    attention = x.get("attention_mask")
    return ids, torch.ones_like(ids) if attention is None else attention.long()


class HashedTfidf:
    """Raw-input baseline: TF-IDF over token ids hashed into ``buckets`` dims (IDF from the train split), L2-normed.

    ``(B, L)`` ids → ``(B, buckets)``. Special tokens and padding are not counted. Hashing keeps the feature width
    fixed whatever the vocabulary (30k for the MiniLM tokeniser); ``id mod buckets`` collides rarely at 4096.
    """

    def __init__(self, train_ids: Sequence[Tensor], *, special_token_ids: Sequence[int], buckets: int = 4096) -> None:
        self.buckets = buckets
        self.special = torch.tensor(sorted(special_token_ids), dtype=torch.long)
        document_frequency = torch.zeros(buckets)
        for seq in train_ids:
            document_frequency[self._keep(seq).remainder(buckets).unique()] += 1
        # Smoothed IDF as in scikit-learn's TfidfVectorizer(smooth_idf=True).
        self.idf = torch.log((1 + len(train_ids)) / (1 + document_frequency)) + 1

    def _keep(self, seq: Tensor) -> Tensor:
        return seq[~torch.isin(seq, self.special)]

    def __call__(self, x: Any) -> Tensor:
        ids, attention = unpack(x)
        counted = (attention.bool() & ~torch.isin(ids, self.special.to(ids.device))).float()
        tf = torch.zeros(ids.shape[0], self.buckets, device=ids.device)
        tf.scatter_add_(1, ids.remainder(self.buckets), counted)
        features = tf * self.idf.to(ids.device)
        return features / features.norm(dim=1, keepdim=True).clamp_min(1e-12)


def synthetic_text(count: int, *, vocab_size: int, num_special: int, num_classes: int, seed: int,
                   max_length: int = 24) -> TextDataset:
    """``count`` fake sequences ``[CLS=2] random ids [SEP=3]`` of varied length: no files touched."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(4, max_length - 1, (count,), generator=generator)
    ids = [[2, *torch.randint(num_special, vocab_size, (int(n),), generator=generator).tolist(), 3] for n in lengths]
    return TextDataset(ids, torch.arange(count) % num_classes, texts=[" ".join(map(str, s)) for s in ids],
                       source="synthetic")
