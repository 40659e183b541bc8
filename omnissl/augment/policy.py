"""Compose registered augmentation ops into views, modality-agnostically.

An op is any callable ``op(x) -> x`` over a whole batch input (a ``(B, C, H, W)`` tensor, a dict of token
tensors, a PyG ``Batch`` …) that draws its randomness per sample, on the batch's device. Each view re-applies the
same op sequence with fresh random draws, like lightly's ``MultiViewTransform`` but on batches.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from omnissl.core.instantiate import build_component
from omnissl.core.config import Augment, ViewGroup
from omnissl.core.registry import AUGMENTATIONS
from omnissl.core.types import ViewSet

Op = Callable[[Any], Any]


class ViewPolicy:
    """``global_count`` views through ``global_ops`` and ``local_count`` views through ``local_ops``; view ``i``
    of a group then also runs its own ``*_per_view[i]`` ops (asymmetric policies)."""

    def __init__(self, *, global_ops: Sequence[Op], global_count: int = 2, local_ops: Sequence[Op] = (),
                 local_count: int = 0, global_per_view: Sequence[Sequence[Op]] | None = None,
                 local_per_view: Sequence[Sequence[Op]] | None = None) -> None:
        self.global_pipelines = _pipelines(global_ops, global_count, global_per_view)
        self.local_pipelines = _pipelines(local_ops, local_count, local_per_view)
        self.global_count, self.local_count = global_count, local_count

    @staticmethod
    def _apply(ops: Sequence[Op], x: Any) -> Any:
        for op in ops:
            x = op(x)
        return x

    def __call__(self, x: Any) -> ViewSet:
        return ViewSet(
            global_views=[self._apply(ops, x) for ops in self.global_pipelines],
            local_views=[self._apply(ops, x) for ops in self.local_pipelines],
            original=x,
        )


def _pipelines(shared: Sequence[Op], count: int, per_view: Sequence[Sequence[Op]] | None) -> list[list[Op]]:
    if per_view is not None and len(per_view) != count:
        raise ValueError(f"{len(per_view)} per-view op lists for {count} views")
    return [[*shared, *(per_view[i] if per_view is not None else ())] for i in range(count)]


def _build_group(group: ViewGroup | None, path: str, context: Mapping[str, Any] | None
                 ) -> tuple[list[Op], int, list[list[Op]] | None]:
    if group is None:
        return [], 0, None
    shared = [build_component(AUGMENTATIONS, spec, f"{path}.ops[{i}]", context) for i, spec in enumerate(group.ops)]
    per_view = None
    if group.per_view is not None:
        per_view = [[build_component(AUGMENTATIONS, spec, f"{path}.per_view[{v}][{i}]", context)
                     for i, spec in enumerate(ops)] for v, ops in enumerate(group.per_view)]
    return shared, group.count, per_view


def build_policy(augment: Augment, *, path: str, context: Mapping[str, Any] | None = None) -> ViewPolicy:
    """Build a :class:`ViewPolicy` from a recipe's ``augment`` section; errors name the op's path."""
    global_ops, global_count, global_per_view = _build_group(augment.global_views, f"{path}.global", context)
    local_ops, local_count, local_per_view = _build_group(augment.local_views, f"{path}.local", context)
    return ViewPolicy(global_ops=global_ops, global_count=global_count, local_ops=local_ops, local_count=local_count,
                      global_per_view=global_per_view, local_per_view=local_per_view)
