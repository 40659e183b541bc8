"""Shared data types: what encoders return, what data bundles provide, what objectives receive."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Protocol, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from omnissl.core.errors import DataError

OutputKind = Literal["pooled", "tokens"]


@dataclass
class EncoderOutput:
    """What every encoder returns.

    pooled: ``(B, D)`` one vector per sample (instance-level objectives, evaluation).
    tokens: ``(B, N, D)`` per-token features (masked / token-level objectives), or ``None``.
    padding_mask: ``(B, N)`` bool, ``True`` where a token is padding, or ``None`` when nothing is padded.
    hidden_states: per-layer ``(B, N, D)`` outputs when asked for (data2vec targets), else ``None``.
    """

    pooled: Tensor
    tokens: Tensor | None = None
    padding_mask: Tensor | None = None
    hidden_states: list[Tensor] | None = None


@dataclass
class TokenSequence:
    """Embedded tokens before the transformer body: ``tokens (B, N, D)`` with positions already added."""

    tokens: Tensor
    padding_mask: Tensor | None = None


class Encoder(nn.Module):
    """Base class of every backbone. Subclasses set ``embed_dim`` and ``output_kinds`` and implement ``forward``."""

    embed_dim: int
    output_kinds: frozenset[str] = frozenset({"pooled"})

    def forward(self, x: Any) -> EncoderOutput:  # pragma: no cover - interface
        raise NotImplementedError


class TokenEncoder(Encoder):
    """An encoder over a token sequence that can run on a subset of its tokens (MAE, data2vec).

    ``tokenize(x)`` embeds the modality input into ``TokenSequence`` (positions included), ``encode_tokens``
    runs the body on any subset of those tokens, and ``reconstruction_target(x)`` gives the per-token
    target ``(B, N, P)`` a masked-reconstruction objective predicts.
    """

    output_kinds = frozenset({"pooled", "tokens"})

    def tokenize(self, x: Any) -> TokenSequence:  # pragma: no cover - interface
        raise NotImplementedError

    def encode_tokens(self, sequence: TokenSequence, *, return_hidden_states: bool = False) -> EncoderOutput:
        raise NotImplementedError  # pragma: no cover - interface

    def reconstruction_target(self, x: Any) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def forward(self, x: Any) -> EncoderOutput:
        return self.encode_tokens(self.tokenize(x))


@dataclass
class ViewSet:
    """The augmented views of one batch: ``global_views`` (e.g. 2 large crops) and ``local_views`` (multi-crop)."""

    global_views: list[Any]
    local_views: list[Any] = field(default_factory=list)
    original: Any = None

    @property
    def all_views(self) -> list[Any]:
        return [*self.global_views, *self.local_views]


@dataclass
class ObjectiveOutput:
    """loss: scalar to minimise; logs: scalars to record (tensors are read only at log time); embeddings: ``(B, D)`` for the collapse monitor."""

    loss: Tensor
    logs: dict[str, Tensor | float] = field(default_factory=dict)
    embeddings: Tensor | None = None


class Collate(Protocol):
    def __call__(self, samples: Sequence[Any]) -> dict[str, Any]: ...


@dataclass
class DataBundle:
    """What a dataset builder returns.

    train / test: datasets whose items the ``collate`` turns into ``{"x": input, "y": labels, "index": ids}``.
    ``y`` rows must line up with the encoder's pooled rows (one label per sample, or per node for node-level data).
    input_spec: facts about the input (``in_channels``, ``image_size``, ``vocab_size`` …) that fill any builder
    parameter of the same name the recipe leaves out.
    raw_features: turns an ``x`` batch into a flat ``(B, F)`` float tensor for the raw-input baseline.
    artifacts: files the data pipeline fixed for this run (a fitted schema, a trained tokenizer): the trainer copies
    them into ``RUN_DIR/artifacts/`` so the run directory alone says how its inputs were prepared.
    class_names: ``class_names[y]`` is label ``y``'s display name, for reports (legends, retrieval titles); ``None``
    when the data has none, and then plots show the index. A plugin that only publishes
    ``input_spec["class_names"]`` (the older convention) gets the field filled from there.
    """

    train: Dataset[Any]
    test: Dataset[Any] | None
    collate: Callable[[Sequence[Any]], dict[str, Any]]
    num_classes: int | None = None
    input_spec: dict[str, Any] = field(default_factory=dict)
    raw_features: Callable[[Any], Tensor] | None = None
    description: str = ""
    artifacts: dict[str, Path] = field(default_factory=dict)
    class_names: list[str] | None = None

    def __post_init__(self) -> None:
        if self.class_names is None and self.input_spec.get("class_names") is not None:
            self.class_names = list(self.input_spec["class_names"])
        if self.class_names is None:
            return
        self.class_names = [str(name) for name in self.class_names]
        # A name list of the wrong length would label every plot wrongly without any error, so refuse it here.
        if self.num_classes is not None and len(self.class_names) != self.num_classes:
            raise DataError(f"dataset '{self.description}': {len(self.class_names)} class names "
                            f"{self.class_names[:5]} for num_classes={self.num_classes}")


def class_name(*, names: Sequence[str] | None, label: int) -> str:
    """Label ``label``'s display name, or the index itself when the dataset publishes no (or too few) names."""
    return names[label] if names is not None and 0 <= label < len(names) else str(label)


def to_device(value: Any, device: torch.device | str, non_blocking: bool = True) -> Any:
    """Move tensors (also inside dicts, lists and objects with ``.to``) to ``device``."""
    if isinstance(value, Tensor):
        return value.to(device, non_blocking=non_blocking)
    if isinstance(value, dict):
        return {key: to_device(item, device, non_blocking) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(item, device, non_blocking) for item in value)
    if hasattr(value, "to") and callable(value.to):
        return value.to(device)
    return value


# Modality input types the core cannot know (a PyG graph batch, ...): (matches, batch size), filled by plugins.
_BATCH_SIZES: list[tuple[Callable[[Any], bool], Callable[[Any], int]]] = []


def register_batch_size(matches: type | Callable[[Any], bool], size: Callable[[Any], int]) -> None:
    """Teach :func:`batch_size_of` a plugin's input type: ``matches`` is a class or a predicate, ``size(x)`` the
    number of samples (the graph plugin registers PyG batches → ``num_graphs``). Called at plugin import."""
    predicate = (lambda x: isinstance(x, matches)) if isinstance(matches, type) else matches
    _BATCH_SIZES.append((predicate, size))


def batch_size_of(x: Any) -> int:
    """Number of samples in a modality input: a tensor ``(B, ...)``, a dict of them (its first value), a type a
    plugin registered with :func:`register_batch_size`, or a list/tuple of samples."""
    if isinstance(x, Tensor):
        return int(x.shape[0])
    if isinstance(x, dict):
        return batch_size_of(next(iter(x.values())))
    for matches, size in _BATCH_SIZES:
        if matches(x):
            return int(size(x))
    if isinstance(x, (list, tuple)):
        return len(x)
    raise TypeError(f"cannot tell the batch size of {type(x).__name__}")
