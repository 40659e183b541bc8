"""Compose registered augmentation ops into views, modality-agnostically.

An op is any callable ``op(x) -> x`` over a whole batch input (a ``(B, C, H, W)`` tensor, a dict of token
tensors, a PyG ``Batch`` …) that draws its randomness per sample, on the batch's device. Each view re-applies the
same op sequence with fresh random draws, like lightly's ``MultiViewTransform`` but on batches.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from omnissl.build import build_component
from omnissl.config import Augment
from omnissl.registry import AUGMENTATIONS
from omnissl.types import ViewSet

Op = Callable[[Any], Any]


class ViewPolicy:
    """``global_count`` views through ``global_ops`` and ``local_count`` views through ``local_ops``."""

    def __init__(self, *, global_ops: Sequence[Op], global_count: int = 2,
                 local_ops: Sequence[Op] = (), local_count: int = 0) -> None:
        self.global_ops = list(global_ops)
        self.global_count = global_count
        self.local_ops = list(local_ops)
        self.local_count = local_count

    @staticmethod
    def _apply(ops: Sequence[Op], x: Any) -> Any:
        for op in ops:
            x = op(x)
        return x

    def __call__(self, x: Any) -> ViewSet:
        return ViewSet(
            global_views=[self._apply(self.global_ops, x) for _ in range(self.global_count)],
            local_views=[self._apply(self.local_ops, x) for _ in range(self.local_count)],
            original=x,
        )


def build_policy(augment: Augment, *, path: str, context: Mapping[str, Any] | None = None) -> ViewPolicy:
    """Build a :class:`ViewPolicy` from a recipe's ``augment`` section; errors name the op's path."""
    global_ops = [
        build_component(AUGMENTATIONS, spec, f"{path}.global.ops[{i}]", context)
        for i, spec in enumerate(augment.global_views.ops)
    ]
    local_ops: list[Op] = []
    local_count = 0
    if augment.local_views is not None:
        local_count = augment.local_views.count
        local_ops = [
            build_component(AUGMENTATIONS, spec, f"{path}.local.ops[{i}]", context)
            for i, spec in enumerate(augment.local_views.ops)
        ]
    return ViewPolicy(global_ops=global_ops, global_count=augment.global_views.count,
                      local_ops=local_ops, local_count=local_count)
