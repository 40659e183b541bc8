"""The objective interface every SSL method implements, whatever the modality."""

from __future__ import annotations

from typing import Any, Mapping

from torch import nn

from omnissl.core.errors import ConfigError, IncompatibleError
from omnissl.core.types import Encoder, ObjectiveOutput, OutputKind, ViewSet


def require_output(encoder: Encoder, kind: OutputKind, objective: str) -> None:
    """Fail at build time when ``encoder`` cannot give what ``objective`` needs."""
    if kind not in encoder.output_kinds:
        raise IncompatibleError(
            f"objective '{objective}' needs {kind} outputs, but encoder {type(encoder).__name__} "
            f"only gives {', '.join(sorted(encoder.output_kinds))}; choose a token encoder (e.g. a ViT or "
            f"transformer) for masked objectives"
        )
    if kind == "tokens" and not all(hasattr(encoder, m) for m in ("tokenize", "encode_tokens")):
        raise IncompatibleError(
            f"objective '{objective}' needs a TokenEncoder (tokenize/encode_tokens); "
            f"{type(encoder).__name__} is not one"
        )


class Objective(nn.Module):
    """A trainable SSL method that owns its encoder(s) and heads.

    ``forward(views)`` returns an :class:`ObjectiveOutput`; ``on_step_end`` runs after each optimizer step
    (EMA teachers, queues, centres: keep their state in buffers so checkpoints capture it); ``towers`` names the
    encoders that evaluation reads features from — always backbones, never projection heads.

    Every recipe hands its objective ``{tower: ViewSet}`` (``Assembled.views``); a single-tower objective is
    called with that mapping or a bare ViewSet and its ``forward`` always gets the one ViewSet (``__call__``
    unwraps it), so single-modality methods never see tower names. ``tower_name`` is the recipe's name for the
    one tower (``main`` unless the recipe names it).
    """

    requires: OutputKind = "pooled"
    paired: bool = False
    tower_name: str = "main"

    def __init__(self, encoder: Encoder) -> None:
        super().__init__()
        require_output(encoder, self.requires, type(self).__name__)
        self.encoder = encoder

    def __call__(self, views: Any, *args: Any, **kwargs: Any) -> Any:
        return super().__call__(self._one_tower(views), *args, **kwargs)

    def _one_tower(self, views: Any) -> Any:
        if self.paired or not isinstance(views, Mapping):
            return views
        if len(views) != 1:
            raise ConfigError(f"objective '{type(self).__name__}' takes one tower, got views for "
                              f"{', '.join(map(str, views))}")
        return next(iter(views.values()))

    def forward(self, views: ViewSet) -> ObjectiveOutput:  # pragma: no cover - interface
        raise NotImplementedError

    def on_step_end(self, *, step: int, total_steps: int) -> None:
        """Called after every optimizer step with the 0-based step just done."""

    @property
    def towers(self) -> dict[str, Encoder]:
        return {self.tower_name: self.encoder}


class PairedObjective(Objective):
    """A cross-modal objective over two or more named towers (CLIP, SigLIP); ``forward`` gets ``{tower: ViewSet}``
    for every tower of the recipe."""

    paired = True

    def __init__(self, encoders: dict[str, Encoder]) -> None:  # noqa: D107 - see class docstring
        nn.Module.__init__(self)
        for name, encoder in encoders.items():
            require_output(encoder, self.requires, f"{type(self).__name__}[{name}]")
        self.encoders = nn.ModuleDict(encoders)

    @property
    def towers(self) -> dict[str, Encoder]:
        return dict(self.encoders.items())  # type: ignore[arg-type]
