"""Run a network over several augmented views at once, whatever the modality input is.

Consecutive tensor views of one shape are concatenated into a single call (one pass is faster, and BatchNorm then
normalises over all views as SimCLR/BYOL/DINO do); other inputs (dicts of token tensors, graph batches) and views
of different sizes (multi-crop) are run group by group, like DINO's ``MultiCropWrapper``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor
from torch.utils._pytree import tree_flatten

from omnissl.core.errors import ConfigError


def _key(view: Any) -> tuple[Any, ...] | None:
    if isinstance(view, Tensor):
        return (tuple(view.shape[1:]), view.dtype)
    return None


def run_views(fn: Callable[[Any], Tensor], views: Sequence[Any]) -> list[Tensor]:
    """``fn`` maps one input batch ``(B, …)`` to ``(B, D)``; returns one ``(B, D)`` tensor per view, in order."""
    outputs: list[Tensor] = []
    index = 0
    while index < len(views):
        key = _key(views[index])
        end = index + 1
        if key is not None:
            while end < len(views) and _key(views[end]) == key:
                end += 1
        group = views[index:end]
        if len(group) == 1:
            outputs.append(fn(group[0]))
        else:
            sizes = [v.shape[0] for v in group]
            outputs.extend(fn(torch.cat(list(group))).split(sizes))
        index = end
    return outputs


# Inputs whose tensors torch's pytree cannot see (a PyG batch is one opaque leaf): (matches, its tensor), filled
# by plugins at import through register_first_tensor.
_FIRST_TENSORS: list[tuple[Callable[[Any], bool], Callable[[Any], Tensor]]] = []


def register_first_tensor(matches: Callable[[Any], bool], tensor: Callable[[Any], Tensor]) -> None:
    """Teach :func:`first_tensor` an opaque plugin input (the graph plugin: a PyG batch → its node features)."""
    _FIRST_TENSORS.append((matches, tensor))


def first_tensor(x: Any) -> Tensor:
    """The first tensor inside a modality input (for its device), e.g. the ids of a token dict."""
    if isinstance(x, Tensor):
        return x
    leaves = [leaf for leaf in tree_flatten(x)[0] if isinstance(leaf, Tensor)]
    for matches, tensor in _FIRST_TENSORS if not leaves else ():
        if matches(x):
            return tensor(x)
    if not leaves:
        raise TypeError(f"no tensor inside a {type(x).__name__} input")
    return leaves[0]


def need_views(views_count: int, minimum: int, method: str) -> None:
    if views_count < minimum:
        raise ConfigError(f"augment.global.count: {method} needs at least {minimum} global views, got {views_count}")
