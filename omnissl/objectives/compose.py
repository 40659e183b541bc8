"""Composed objectives: a weighted sum of registered objectives over one shared encoder (DINOv2-style recipes).

DINOv2 (Oquab et al., 2024, §4) trains one ViT with DINO's image-level loss, iBOT's masked patch-level loss and the
KoLeo regulariser; SimCLR + MAE hybrids (e.g. Huang et al., 2023, "Contrastive Masked Autoencoders") add a
contrastive and a reconstruction loss. Here such a method is a recipe, not a new class::

    objective:
      name: compose
      terms:
        - {name: dino, weight: 1.0, out_dim: 256}
        - {name: ibot, weight: 1.0, cls_weight: 0.0}
        - {name: koleo, weight: 0.1, weight_end: 0.0}

Each term is any registered single-tower objective, built from the same context as a top-level one (the encoder,
the dataset's ``input_spec``) and validated like one: an unknown key is ``objective.terms[1].foo``. Keys of a term
that belong to the composition, not to the objective: ``weight`` (default 1), ``weight_end`` (a linear schedule
from ``weight`` to ``weight_end`` over ``weight_steps`` optimizer steps, default the whole run) and ``log_as`` (the
log prefix; default the objective name, ``name#2`` for a repeat).

Loss: ``L = Σ_k w_k(step) · L_k``; every term's loss is logged as ``<term>/loss``, its logs as ``<term>/<key>`` and
its weight as ``<term>/weight``. Every term sees the same ``ViewSet`` (one augmentation policy), so a term that
needs local crops (DINO) gets them and the others ignore them. ``requires`` is ``tokens`` when any term needs tokens.

Shared EMA teachers: when two terms each keep an EMA copy of the one student encoder (DINO and iBOT both do), the
later terms' copies are replaced by the first term's, so the recipe trains one teacher, as DINOv2 does. The first
term holding a shared teacher owns it: its ``on_step_end`` moves the teacher with its momentum schedule; the other
terms' updates of that module are undone (the teacher is restored after their ``on_step_end``), so it moves once per
step. Heads and centres stay per term (DINOv2 keeps separate DINO and iBOT heads by default, §4).
Under DDP each term already follows the global-batch rule and a weighted sum keeps it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from omnissl.core.config import Component
from omnissl.core.errors import ConfigError
from omnissl.core.instantiate import BuildContext, build_component, current_context
from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import Encoder, ObjectiveOutput, ViewSet
from omnissl.objectives.base import Objective

COMPOSE_KEYS = ("weight", "weight_end", "weight_steps", "log_as")


def term_weight(step: int, total_steps: int, *, start: float, end: float, steps: int | None) -> float:
    """Linear ``start → end`` over ``steps`` optimizer steps (default ``total_steps``), then ``end``; 0-based
    ``step`` counts the steps already done (``start`` before the first one)."""
    span = steps if steps is not None else total_steps
    if span <= 0:
        return end
    return start + (end - start) * min(1.0, step / span)


def _teacher_copies(term: nn.Module, student: Encoder) -> Iterator[tuple[nn.Module, str, nn.Module]]:
    """``(parent, attribute, module)`` for each frozen copy of ``student`` inside ``term`` (its EMA teachers):
    same class, same parameter count, no parameter trainable, not the student itself."""
    count = sum(1 for _ in student.parameters())
    for parent in term.modules():
        for attribute, module in list(parent.named_children()):
            if module is student or type(module) is not type(student):
                continue
            parameters = list(module.parameters())
            if len(parameters) == count and parameters and not any(p.requires_grad for p in parameters):
                yield parent, attribute, module


class Compose(Objective):
    """``L = Σ_k w_k · L_k`` over terms that share one encoder (see the module docstring)."""

    def __init__(self, encoder: Encoder, *, terms: list[Objective], labels: list[str],
                 weights: list[tuple[float, float, int | None]]) -> None:
        nn.Module.__init__(self)  # the terms checked what they need from the encoder
        self.encoder = encoder
        self.requires = "tokens" if any(t.requires == "tokens" for t in terms) else "pooled"
        self.terms = nn.ModuleList(terms)
        self.labels, self.weights = labels, weights
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))
        self.register_buffer("total_steps", torch.zeros((), dtype=torch.long))
        self._shared: list[tuple[int, nn.Module]] = []  # (term index that must not move it, shared teacher)
        self._share_teachers()

    def _share_teachers(self) -> None:
        owner: nn.Module | None = None
        for index, term in enumerate(self.terms):
            for parent, attribute, module in list(_teacher_copies(term, self.encoder)):
                if owner is None:
                    owner = module
                elif module is not owner:
                    setattr(parent, attribute, owner)
                    self._shared.append((index, owner))

    @property
    def shared_teacher_terms(self) -> list[str]:
        """Labels of the terms that use the first term's EMA teacher instead of their own."""
        return [self.labels[index] for index, _ in self._shared]

    @property
    def towers(self) -> dict[str, Encoder]:
        # What the first term evaluates (DINO: its teacher, now shared) is what the composition evaluates.
        return {self.tower_name: next(iter(self.terms[0].towers.values()))}

    def current_weights(self) -> list[float]:
        step, total = int(self.steps_done), int(self.total_steps)
        return [term_weight(step, total, start=start, end=end, steps=steps) for start, end, steps in self.weights]

    def forward(self, views: ViewSet) -> ObjectiveOutput:
        total: Tensor | None = None
        logs: dict[str, Tensor | float] = {}
        embeddings = None
        for label, term, weight in zip(self.labels, self.terms, self.current_weights()):
            term.tower_name = self.tower_name
            out = term(views)
            total = weight * out.loss if total is None else total + weight * out.loss
            logs[f"{label}/loss"] = out.loss.detach()
            logs[f"{label}/weight"] = weight
            logs.update({f"{label}/{key}": value for key, value in out.logs.items()})
            embeddings = out.embeddings if embeddings is None else embeddings
        assert total is not None
        return ObjectiveOutput(loss=total, logs=logs, embeddings=embeddings)

    def on_step_end(self, *, step: int, total_steps: int) -> None:
        self.steps_done.fill_(step + 1)
        self.total_steps.fill_(total_steps)
        for index, term in enumerate(self.terms):
            frozen = [module for owner_index, module in self._shared if owner_index == index]
            saved = [[t.detach().clone() for t in (*m.parameters(), *m.buffers())] for m in frozen]
            term.on_step_end(step=step, total_steps=total_steps)
            with torch.no_grad():
                for module, values in zip(frozen, saved):
                    for tensor, value in zip((*module.parameters(), *module.buffers()), values):
                        tensor.copy_(value)


def _split_term(raw: Any, path: str) -> tuple[Component, float, float, int | None, str | None]:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise ConfigError(f"{path}: a term is a mapping with a 'name' (a registered objective), got {raw!r}")
    params = dict(raw)
    weight = params.pop("weight", 1.0)
    weight_end = params.pop("weight_end", weight)
    weight_steps = params.pop("weight_steps", None)
    log_as = params.pop("log_as", None)
    for key, value in (("weight", weight), ("weight_end", weight_end)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}.{key}: expected a number, got {value!r}")
    if weight_steps is not None and (isinstance(weight_steps, bool) or not isinstance(weight_steps, int)
                                     or weight_steps < 1):
        raise ConfigError(f"{path}.weight_steps: expected a positive integer, got {weight_steps!r}")
    if log_as is not None and (not isinstance(log_as, str) or not log_as or "/" in log_as):
        raise ConfigError(f"{path}.log_as: expected a non-empty name without '/', got {log_as!r}")
    if params["name"] == "compose":
        raise ConfigError(f"{path}.name: a compose term cannot itself be 'compose'; list its terms here instead")
    return Component(**params), float(weight), float(weight_end), weight_steps, log_as


@OBJECTIVES.register("compose", description="Weighted sum of objectives over one encoder, shared EMA teachers (DINOv2-style)",
                     example_params={"terms": [{"name": "simclr", "projection_dim": 16}]})
def build_compose(*, encoder: Encoder, terms: list[dict[str, Any]]) -> Compose:
    """``terms``: ``[{name: <objective>, weight: 1.0, [weight_end, weight_steps, log_as], <its parameters>}]``."""
    if not terms:
        raise ConfigError("objective.terms: give at least one term ({name: <objective>, weight: …})")
    outer = current_context()
    context = BuildContext(input_spec={k: v for k, v in outer.items()
                                       if getattr(outer, "sources", {}).get(k) == "input_spec"},
                           context={"encoder": encoder})
    built: list[Objective] = []
    labels: list[str] = []
    weights: list[tuple[float, float, int | None]] = []
    for index, raw in enumerate(terms):
        path = f"objective.terms[{index}]"
        spec, weight, weight_end, weight_steps, log_as = _split_term(raw, path)
        objective = build_component(OBJECTIVES, spec, path, context)
        if not isinstance(objective, Objective) or objective.paired:
            raise ConfigError(f"{path}.name: '{spec.name}' is not a single-tower objective")
        label = log_as or spec.name
        if label in labels:
            if log_as is not None:
                raise ConfigError(f"{path}.log_as: '{label}' is already used by another term")
            label = f"{spec.name}#{sum(1 for known in labels if known.split('#')[0] == spec.name) + 1}"
        built.append(objective)
        labels.append(label)
        weights.append((weight, weight_end, weight_steps))
    return Compose(encoder, terms=built, labels=labels, weights=weights)
